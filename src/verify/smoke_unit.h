// The smoke run as a portable unit: what a scheduler (Slurm, Kubernetes, a
// CI job) needs to run the smoke suite of one image on its GPUs, and the way
// the result comes back into the ledger.
//
// A unit names images by digest only (a tag can move between submission and
// run). Its smoke image carries its own identity: the release image's id and
// the suite hash are baked into it as KILN_IMAGE_ID / KILN_SUITE_HASH, and
// the programs' arguments as KILN_SMOKE_ARGS / KILN_TORCH_ARGS /
// KILN_LIBTORCH_ARGS, so the command line only has to start
// /opt/kiln-smoke/kiln-smoke-unit (kernels/unit/) with the GPUs attached; it
// prints one JSON document (schema kiln.smoke-unit/v1, docs/json.md) on
// stdout. A result is accepted only for the image id and suite hash kiln
// expects, with the GPU model, driver and count it ran on (unit_result_problem).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "matrix/matrix.h"

namespace kiln::verify {

inline constexpr const char* kUnitProgram = "/opt/kiln-smoke/kiln-smoke-unit";
inline constexpr const char* kUnitSchema = "kiln.smoke-unit/v1";

struct SmokeUnit {
  std::string combo_id;
  std::string runner;      // the matrix runner (class) it is meant for
  std::string image_id;    // "sha256:<config digest>": what the verdict is recorded against
  std::string image_ref;   // REGISTRY/REPO@sha256:<manifest digest>: the release image, staged
  std::string smoke_ref;   // REGISTRY/REPO@sha256:<manifest digest>: its smoke image (suite on top)
  std::string suite_hash;  // 64 hex: kernels/ sources + the smoke template (suite_hash())
  std::vector<std::string> gpu_classes;  // the runner's: "sm_90"
  std::string gpu_product;               // the runner's GFD product label ("NVIDIA-H200"); "" any
  int gpus = 1;                          // GPUs the run asks for
  std::int64_t shm_size = 1LL << 30;     // /dev/shm bytes
  int timeout_s = 300;
  // docker/podman only: how the GPUs reach the container, as the runner's
  // mode says (nvidia: --gpus N; cdi: --device nvidia.com/gpu=I; devices:
  // the nodes, driver_libs bound read-only and put in front of the image's
  // own LD_LIBRARY_PATH; slurm: inside a Slurm job, every GPU of the node
  // with the job's CUDA_VISIBLE_DEVICES, so CUDA sees only the GPUs Slurm
  // gave the job). Schedulers (k8s, pyxis) attach GPUs themselves.
  matrix::GpuMode gpu_mode = matrix::GpuMode::nvidia;
  std::vector<std::string> devices;
  std::string driver_libs;
  std::string image_ld_path;  // the smoke image's LD_LIBRARY_PATH
};

// docker / podman: `run --rm` with no network, a read-only root, /tmp tmpfs,
// the shm size and the GPUs, under `timeout` (the client forwards its
// SIGTERM to the container). pyxis: `srun --gres=gpu:N --time
// --container-image=REGISTRY#REPO@DIGEST kiln-smoke-unit` (enroot's
// reference form; the scheduler's limit is the timeout).
enum class UnitEngine { docker, podman, pyxis };
const char* to_string(UnitEngine e);
std::optional<UnitEngine> parse_unit_engine(std::string_view word);

// The argument vector, and the same as one POSIX-shell line (words quoted
// only where they need it). `program`: docker's/podman's CLI when it is not
// that name on PATH (a Slurm runner's container_cli).
std::vector<std::string> unit_argv(const SmokeUnit& u, UnitEngine e, const std::string& program = "");
std::string unit_command(const SmokeUnit& u, UnitEngine e);
std::string shell_line(const std::vector<std::string>& argv);

// A reference's pieces: "127.0.0.1:5000/kiln/x-smoke@sha256:ab" ->
// registry "127.0.0.1:5000", path "kiln/x-smoke", digest "sha256:ab".
struct ImageRef {
  std::string registry, path, digest;
};
std::optional<ImageRef> split_digest_ref(std::string_view ref);

nlohmann::json to_json(const SmokeUnit& u);
SmokeUnit unit_from_json(const nlohmann::json& j);  // throws std::invalid_argument

// Where and on what a verdict was obtained (the report shows it).
struct Placement {
  std::string scheduler;  // "engine" | "slurm" | "kubernetes" | "ci" | "ingest"
  std::string runner;     // the matrix runner (class)
  std::string node;       // host or node name the container ran on
  std::string job;        // the scheduler's job id / pod, when known
  std::string gpu_model;  // "NVIDIA H200"
  std::string gpu_class;  // "sm_90", from the device's compute capability
  std::string driver;     // the kernel module's release "580.159.04" (or the CUDA driver API version "13.0")
  std::string driver_branch;  // "580"
  int gpu_count = 0;
  std::string date;  // UTC, the run's start
};

nlohmann::json placement_json(const Placement& p);
// "580" of "580.159.04"; "" for a CUDA driver API version ("13.0").
std::string driver_branch(const std::string& driver);
// GPU model, class, count, driver, date and host from a kiln-smoke/1 report.
Placement read_placement(const nlohmann::json& smoke_report);
Placement placement_from_json(const nlohmann::json& j);  // missing keys: empty

// A unit's JSON output, read.
struct UnitResult {
  std::string image_id, suite_hash;
  Placement placement;            // node, GPU model, class, driver, count, date from the document
  nlohmann::json document;        // as printed
  int exit_code = -1;             // the combined programs' (0 pass, 1 fail, 3 no GPU)
  std::vector<std::string> problems;  // failed sections, "torch/<section>: why"
};

// Reads a kiln.smoke-unit/v1 document; also a bare kiln-smoke/1 document
// (then image id and suite hash are empty: rejected by unit_result_problem).
// Throws std::invalid_argument when it is neither.
UnitResult read_unit_result(const nlohmann::json& doc);

// Why `r` cannot be accepted as the result of `expected`, in words; "" when
// it can: it must name the image id and suite hash expected, and (unless it
// says no GPU was usable) carry the GPU model, driver and count.
std::string unit_result_problem(const UnitResult& r, const std::string& expected_image_id,
                                const std::string& expected_suite_hash);

// The gpu check's status from a unit's exit code (0 passed, 1 failed,
// 3 no-gpu, anything else error).
const char* unit_status_word(int exit_code);

// Records one gpu verdict with where and on what it ran: the ledger row
// (runner, "gpu", status, detail with "placement", "suite_hash", the
// document and the problems) against `image_id`. Used by `kiln verify`
// (engine runners), `--ingest` and the Slurm runner alike.
void record_gpu_verdict(const std::string& state_dir, const std::string& image_id, const std::string& status,
                        const Placement& where, const std::string& suite_hash, const nlohmann::json& document,
                        const std::vector<std::string>& problems);

// The hash of the smoke suite: kernels/ sources (CMakeLists.txt, cmake/,
// src/, torch/, unit/) and the smoke template, as sha256 hex. A change to
// any of them re-verifies every image.
std::string suite_hash(const std::string& kernels_dir, const std::string& smoke_template);

}  // namespace kiln::verify
