// Shared by the verify room's files.
#pragma once
#include <filesystem>
#include <memory>

#include "image/image.h"
#include "render/render.h"
#include "verify/verify.h"

namespace kiln::verify::detail {

// `labels`: the LABELs its rendered Dockerfile sets (render::Rendered::labels).
CheckResult static_check(const plan::Combo& c, const plan::Plan& p, const std::map<std::string, std::string>& labels,
                         const std::string& image, engine::Client& client, const Options& o);

// The same for an image only in the registry (pushed by a builder that is
// not the engine): its config and layers read by digest through the
// registry (image::registry_source), no engine involved.
CheckResult static_check_pushed(const plan::Combo& c, const plan::Plan& p,
                                const std::map<std::string, std::string>& labels, const PushedImage& img,
                                const Options& o);

// The part of the static check that reads the image's files (no engine):
// device code, component versions, PyTorch, driver libraries, compilers.
// `cat` (may be null): its libraries.toml turns gaps in optional libraries into warnings.
CheckResult static_check_files(const plan::Combo& c, const image::ImageFs& fs, const catalog::Catalog* cat = nullptr);

// The programs the gpu check runs, each in its own container: the CUDA
// suite always; for a PyTorch image also smoke_torch.py (with the image's
// python3, the venv's when the image puts it first on PATH) and the LibTorch
// suite compiled in the devel image.
struct SmokeProgram {
  std::string name;  // "kiln-smoke", "torch", "libtorch": the prefix of its sections
  std::vector<std::string> entrypoint;
  std::vector<std::string> args;
};
std::vector<SmokeProgram> smoke_programs(const plan::Combo& c);

// The gpu check's status from each program's (exit code, timed out): any
// failure fails it; "no GPU" (3) from any is no-gpu, never a pass; passed
// only when every program passed.
CheckStatus combined_status(const std::vector<std::pair<std::int64_t, bool>>& runs);

// The gpu check's summary for reports: GPUs used, versions loaded, GEMM
// bf16 TFLOP/s (cuBLAS and torch.matmul), NCCL and DDP busbw, and a line.
nlohmann::json smoke_summary(const nlohmann::json& gpu_detail);

// The smoke suite's image for a toolchain: kiln.local/kiln-smoke-suite:<key>,
// key = sha256(devel image id, suite hash, arch list).
std::string suite_image_tag(const std::string& devel_id, const std::string& suite_hash, const ArchList& arch);

// A combination's smoke image (render::local_smoke_image): the suite image
// (built only when the engine lacks it) copied onto `image`, with the
// unit's identity (KILN_IMAGE_ID, KILN_SUITE_HASH) and arguments baked in.
struct SmokeImage {
  std::string tag;          // "" when it did not build
  std::string suite_image;  // kiln.local/kiln-smoke-suite:<key>
  bool suite_built = false; // false: an earlier image's suite was reused
  std::string error;
};
SmokeImage build_smoke_image(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                             const std::string& image, const std::string& image_id, const std::string& devel,
                             const Runner& runner, const Options& o);

// Builds (incrementally) the smoke image of a combination and runs it.
CheckResult gpu_check(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                      const std::string& image, const Runner& runner, const Options& o);

// The policy's decision from the checks that ran (or were reused). A GPU
// class the arch list cannot serve is refused, whatever the checks say.
// `platform`: the image's ("linux/arm64"); only runners of it count.
void decide(ComboVerdict& v, const matrix::Policy& policy, const std::vector<Runner>& runners, const ArchList& arch,
            const std::string& platform = "linux/amd64");

// Why a GPU class (a policy's or a runner's "sm_70") cannot run an image
// built for `arch`, in words; "" when it can (SASS or PTX JIT).
std::string class_refusal(const std::string& gpu_class, const ArchList& arch);

// One smoke program's run, wherever it ran (an engine's container, a Slurm job).
struct ProgramOutcome {
  std::string out, err;         // its stdout (the JSON report) and stderr
  std::int64_t exit_code = -1;
  bool timed_out = false;
  std::string not_started;      // why it never ran, in words
};

// The gpu check's detail, problems and status from each program's run
// (programs and runs in the same order): the suite's document at the top,
// smoke_torch.py's under "torch", kiln-smoke-torch's under "libtorch",
// "programs" and "summary".
void judge_smoke(const std::vector<SmokeProgram>& programs, const std::vector<ProgramOutcome>& runs, int timeout_s,
                 CheckResult& r);

// The combination's smoke image, built (incrementally) on the runner's
// engine from its devel image; "" with the reason in `problems`.
std::string smoke_image_for(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                            const std::string& image, const Runner& runner, const Options& o,
                            std::vector<std::string>& problems);

// The gpu check on a gpu = "slurm" runner: the smoke programs as one batch
// job (verify/slurm.h), its verdict with the node, GPU model, driver and count.
CheckResult slurm_check(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                        const std::string& image, const Runner& runner, const Options& o);

}  // namespace kiln::verify::detail
