// kiln verify: is each built image what its plan says, and does it work?
//
//   static  the image's config and bytes against the plan: NVIDIA_REQUIRE_CUDA,
//           labels, user, the CUDA runtime / cuDNN / NCCL / PyTorch it really
//           holds (read from the saved image, no container), no driver
//           library inside, no compiler in a runtime image.
//   gpu     the smoke suite (kernels/) built for the combination's arch list
//           in a smoke image on top of the release image, run in a container
//           with no network, a read-only root and a time limit, on a runner
//           of each GPU class the policy requires.
//
// A combination is verified only when every check its policy requires has
// passed on the exact image id that would be tagged; a new image id has no
// verdicts, so a rebuild is verified again.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "render/render.h"
#include "util/errors.h"
#include "engine/engine.h"
#include "plan/plan.h"
#include "registry/registry.h"
#include "verify/smoke_unit.h"

namespace kiln::state {
class Ledger;
}

namespace kiln::verify {

struct Runner {
  std::string name;
  engine::Endpoint endpoint;
  matrix::GpuMode gpu = matrix::GpuMode::none;
  std::vector<std::string> gpu_classes;  // "sm_90": what its GPUs are
  matrix::Backend backend = matrix::Backend::engine;  // to build smoke images
  std::vector<std::string> devices;      // gpu = "devices": /dev/nvidia0, /dev/nvidiactl, ...
  std::string driver_libs;               // gpu = "devices": host driver library directory
  std::int64_t shm_size = 1LL << 30;     // the smoke container's /dev/shm: NCCL, DataLoader workers
  std::string ipc;                       // IpcMode; "": the engine's default
  int gpus = 0;                          // GPUs a scheduled unit asks for; 0: one
  std::string gpu_product;               // nvidia.com/gpu.product of its nodes (GFD), for exported Jobs
  matrix::Runner::Slurm slurm;           // gpu = "slurm": the job it submits (verify/slurm.h)
  // The platform its GPUs are hosted on ("linux/amd64", "linux/arm64"): the
  // first of the matrix runner's `platform`. A GPU check never runs emulated,
  // so an image is checked only on runners of its own platform.
  std::string platform = "linux/amd64";
};

struct Options {
  std::vector<Runner> runners;
  std::string state_dir = ".kiln";
  std::vector<std::string> only;
  bool force = false;  // rerun checks that already passed on this image
  // Also run the smoke suite on runners without GPUs: proves the plumbing
  // (the suite must then report "no usable GPU", which never passes).
  bool smoke_on_cpu = false;
  int timeout_s = 300;
  std::string kernels_dir = "kernels";  // the smoke suite's sources
  // The suite's hash (smoke_unit.h suite_hash()); verify_plan computes it
  // from kernels_dir and the renderer's smoke template when empty. A gpu
  // pass is reused only for the same hash.
  std::string suite_hash;
  // libraries.toml's roles: a device-code gap in a library the catalog calls
  // optional for its component is a warning, as in `kiln audit` (partial).
  const catalog::Catalog* catalog = nullptr;
  // Told what starts next ("gpu check ID on RUNNER"): a check can take
  // minutes, and the progress display says which one is running.
  std::function<void(const std::string&)> on_step;
};

// A check's outcome; its words (ledger, JSON, tables) are to_string's.
// timed_out and cancelled: a scheduler's job (Slurm) ran past its time
// limit or was cancelled; neither says the image works, neither is a pass.
enum class CheckStatus { passed, failed, no_gpu, error, timed_out, cancelled };
const char* to_string(CheckStatus s);  // "passed" | "failed" | "no-gpu" | "error" | "timed-out" | "cancelled"
// A word read back from the ledger; one kiln never writes is an error.
CheckStatus parse_check_status(std::string_view word);

struct CheckResult {
  std::string check;   // "static" or "gpu"
  std::string runner;
  CheckStatus status = CheckStatus::error;
  std::vector<std::string> problems;
  nlohmann::json detail = nlohmann::json::object();
  bool reused = false;  // taken from the ledger, not rerun
};

struct ComboVerdict {
  std::string id;
  std::string image_id;
  bool verified = false;
  std::string reason;  // why not, in words
  std::vector<CheckResult> checks;
};

struct Report {
  std::vector<ComboVerdict> combos;
  size_t verified() const;
};

// Needs the combinations built (kiln build); an unbuilt one is reported as
// not verified, "not built".
Report verify_plan(const plan::Plan& p, const render::Renderer& r, const Options& o);

nlohmann::json to_json(const Report& r);

// A combination whose image a buildx builder that is not the runner's engine
// pushed (docs/build-farm.md): it is only in the registry, and verify and
// promote read it there, by digest.
struct PushedImage {
  std::string image_id;  // "sha256:<config digest>": what verdicts are recorded against
  std::string ref;       // "HOST/REPO@sha256:<manifest digest>"
};
// The latest built attempt of the combination's final stage, when it was
// pushed; nullopt when the image was built into an engine (or not built).
std::optional<PushedImage> pushed_image(const plan::Combo& c, const plan::Plan& p, const std::string& state_dir);

// How kiln reaches the registry of `host` for the matrix: [registry]
// insecure and credential_helper (loopback hosts speak plain HTTP, as
// Docker's engine does).
registry::Options registry_options(const plan::Plan& p, const std::string& host);

// The runner's engine pulls a pushed image by digest and names it `local`
// (kiln.local/...:ID), so the smoke stage builds on it as on a local build.
void pull_pushed(engine::Client& eng, const plan::Plan& p, const std::string& ref, const std::string& local);

// One result file given to `kiln verify --ingest`.
struct IngestResult {
  std::string file;
  bool accepted = false;
  bool unreadable = false;  // not a file or not JSON: bad input (exit 2)
  std::string reason;       // why refused
  std::string combo, image_id;
  std::string status;       // the recorded check status, when accepted
  Placement placement;
};
// Each file is accepted only when it names a built combination's image id
// and the current suite hash and carries GPU model, driver and count (a
// no-GPU result is recorded as no-gpu); the verdict goes to the ledger.
std::vector<IngestResult> ingest_results(const plan::Plan& p, const render::Renderer& r, const Options& o,
                                         const std::vector<std::string>& files);
nlohmann::json to_json(const std::vector<IngestResult>& results);  // kiln.ingest/v1

// The portable units of a plan (smoke_unit.h): for each built combination
// whose policy wants the gpu check, its smoke image (the suite compiled once
// per devel image, suite hash and arch list) and the release image pushed by
// digest to `staging` (REGISTRY/REPO; the smoke image to REPO-smoke), and
// one unit per runner that names gpu_classes. Built on the first runner's engine.
struct PreparedUnits {
  std::vector<SmokeUnit> units;
  std::vector<std::pair<std::string, std::string>> problems;  // combination, why it has no unit
  std::string suite_hash;
  int suites_built = 0;  // suite images this call compiled (0 on a rerun)
};
PreparedUnits prepare_units(const plan::Plan& p, const render::Renderer& r, const Options& o, const std::string& staging);
nlohmann::json to_json(const PreparedUnits& u);  // kiln.units/v1
// REGISTRY/REPO from the plan's [registry]; "" when it names none.
std::string default_staging(const plan::Plan& p);

// The verdict cache: the ledger's pass of `check` on this image id and
// runner; for the gpu check only one made with `suite_hash` (a changed suite
// re-verifies). A runner stands for its GPU class, count and driver, which
// the pass's placement records.
std::optional<CheckResult> cached_pass(const state::Ledger& ledger, const std::string& image_id, const std::string& runner,
                                       const std::string& check, const std::string& suite_hash);

// Options::suite_hash, or the hash of kernels_dir and r's smoke template.
std::string current_suite_hash(const Options& o, const render::Renderer& r);

// The verdict the ledger already holds for this image: its latest result
// per runner and check, judged by the combination's policy. No check runs.
ComboVerdict recorded_verdict(const plan::Combo& c, const std::string& image_id, const std::vector<Runner>& runners,
                              const std::string& state_dir);

}  // namespace kiln::verify
