// Shared by the verify room's files.
#pragma once
#include <filesystem>
#include <functional>
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

// A combination's images on the staging registry by digest (units.cpp):
// its smoke image built on `builder` (the suite once per toolchain), then it
// and the release image pushed to STAGING-smoke and STAGING. `error` says
// why not (not built, no devel sibling, the smoke build failed); a push
// that fails throws EnvironmentError. Used by `kiln export units` and the
// Slurm runner alike.
struct StagedImages {
  std::string image_id, image_ref, smoke_ref, image_ld_path;
  bool suite_built = false;
  std::string error;
};
StagedImages stage_images(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                          const Runner& builder, const Options& o, const std::string& staging);
// The unit of runner (class) `r` for staged images; a Slurm runner's asks
// for its --gres count of GPUs (0: none).
SmokeUnit make_unit(const plan::Combo& c, const Runner& r, const StagedImages& staged, const Options& o);

// A unit's JSON document judged as `kiln verify --ingest` judges it
// (ingest.cpp): `refused` says why it cannot be taken (another image id,
// another suite hash, no GPU model/driver/count); else the check status,
// where it ran, the detail to record (the document under "unit",
// kiln-smoke's report at the top, "summary") and the problems.
struct AcceptedUnit {
  std::string refused;
  UnitResult result;
  std::string status;
  nlohmann::json detail = nlohmann::json::object();
  std::vector<std::string> problems;
};
AcceptedUnit accept_unit(const nlohmann::json& doc, const UnitResult& r, const std::string& expected_image_id,
                         const std::string& suite_hash);

// The gpu checks of gpu = "slurm" runners (slurm_check.cpp), in two steps
// so that every job of a verify run is on the cluster before kiln waits for
// any: stage_slurm_job pushes the unit's images and writes the batch script
// (the unit's command line, smoke image by digest); run_slurm_jobs submits
// them all, then follows them together in one loop.
struct SlurmJob {
  const plan::Combo* combo = nullptr;
  const Runner* runner = nullptr;
  std::string image_id;
  SmokeUnit unit;
  std::string script, output, error;  // output/error with %j
  int time_limit_min = 0;
  std::string id;                     // the Slurm job id once submitted
  std::string started;                // UTC, at submission
  bool done = false;                  // `result` is final
  CheckResult result;                 // error with the reason until it ran
};
SlurmJob stage_slurm_job(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                         const std::string& image_id, const Runner& runner, const Options& o);
// The batch script of a staged job (its step: the unit's command line for
// the runner's container tool); written by stage_slurm_job.
std::string slurm_job_script(const SlurmJob& job, const std::string& matrix_name);
// Submits every job not yet done, then polls them together until each has
// ended or was given up (pending past queue_timeout, running past its time
// limit + 2 min: scancel'd); `on_done` hears each job as soon as its result
// is final. A SIGINT/SIGTERM/SIGHUP meanwhile: every job kiln submitted and
// that is still on the cluster is scancel'd and reported cancelled through
// `on_done`, then kiln ends of the signal (util/child.h InterruptScope).
void run_slurm_jobs(std::vector<SlurmJob>& jobs, const Options& o, const std::function<void(SlurmJob&)>& on_done);

}  // namespace kiln::verify::detail
