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
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "render/render.h"
#include "util/errors.h"
#include "engine/engine.h"
#include "plan/plan.h"

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
  matrix::Runner::Slurm slurm;           // gpu = "slurm": the job it submits (verify/slurm.h)
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

// The verdict the ledger already holds for this image: its latest result
// per runner and check, judged by the combination's policy. No check runs.
ComboVerdict recorded_verdict(const plan::Combo& c, const std::string& image_id, const std::vector<Runner>& runners,
                              const std::string& state_dir);

}  // namespace kiln::verify
