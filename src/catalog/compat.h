// Compatibility rules on top of the catalog's facts, shared by the plan
// (arch lists it will build) and the audit (fat binaries it reads), so both
// give the same answer and the same words [S1, S2, S11].
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"
#include "util/cc.h"
#include "util/version.h"

namespace kiln::catalog {

// A driver minimum and the rule behind it, in words.
struct DriverFloor {
  Version driver;
  std::string why;  // "CUDA 12.4 runtime needs ≥ 525.60.13 (minor-version compatibility)"
};

// Minor-version compatibility: a CUDA X.Y runtime runs on an older driver of
// its major, but only from SASS.
DriverFloor runtime_floor(const CudaRelease& cuda);

// The driver code from this toolkit needs when a GPU runs it as `s`: the
// minor-version floor for SASS, the toolkit's own driver for PTX JIT (the
// driver's JIT must know the PTX ISA the toolkit wrote).
Version driver_for(const CudaRelease& cuda, Support s);

// The release a runtime version belongs to ("12.4.127" -> 12.4). A minor the
// catalog lacks ("12.5") maps to the next catalogued minor of the same major:
// its floors are never lower, so the answer errs on the safe side.
const CudaRelease* release_for(const Catalog& c, const Version& cuda);

// The oldest catalogued release whose nvcc writes PTX ISA `isa` or newer:
// the toolkit that made a PTX entry (or the nearest newer one catalogued).
const CudaRelease* release_for_ptx_isa(const Catalog& c, const Version& isa);

// NVIDIA_REQUIRE_CUDA as the NVIDIA container runtime reads it: space-
// separated alternatives (any one suffices), each a comma-separated list of
// conditions that must all hold: "cuda>=12.6 brand=tesla,driver>=535,driver<536 ...".
struct RequireCuda {
  struct Alternative {
    std::string brand;         // empty: any brand
    Version driver_min;        // driver>=N (empty when absent)
    Version driver_below;      // driver<M  (empty when absent)
    bool admits(const Version& driver) const;
  };
  Version cuda;  // cuda>=X.Y; empty when the string has none
  std::vector<Alternative> alternatives;
  // Throws nothing; returns nullopt and sets `error` for anything it cannot read.
  static std::optional<RequireCuda> parse(std::string_view text, std::string* error = nullptr);
};

// The newest CUDA a driver reports (what `cuda>=X.Y` compares with): the
// newest catalogued release whose first driver's branch is at or below the
// driver's branch. Empty when the driver predates every release.
Version driver_cuda(const Catalog& c, const Version& driver);

// How the container runtime's requirement treats a driver.
struct RequireAnswer {
  enum Kind { any_brand, brands_only, refused } kind = any_brand;
  std::vector<std::string> brands;  // brands_only: the brands admitted
  std::string why;                  // words for brands_only and refused
};
// The rule kiln applies to every image carrying NVIDIA_REQUIRE_CUDA (see
// docs/plan-json.md "NVIDIA_REQUIRE_CUDA and check-driver"):
//   - the driver reports CUDA >= X.Y: `cuda>=X.Y` holds on every brand;
//   - else its branch matches brand alternatives: the runtime starts the
//     container only on those brands, where it runs through minor-version
//     compatibility (driver at or above the minor-version floor) or through
//     forward compatibility (the cuda-compat package of nvidia/cuda bases,
//     below that floor);
//   - else the runtime refuses to start the container.
RequireAnswer answer_require_cuda(const Catalog& c, const RequireCuda& req, const Version& driver);

// Limits a GPU's own architecture puts on the driver: the first driver that
// knows the architecture and, for old ones, the last branch that keeps it.
// Messages name the limit that failed; empty when the driver is fine.
// `name` is the GPU as the user gave it ("H100", "sm_90").
std::vector<std::string> gpu_driver_limits(const Catalog& c, const std::string& name, const ComputeCapability& cc,
                                           const Version& driver);
// The driver floor a GPU's architecture sets (empty when unknown), and why:
// "H100 (sm_90, Hopper) needs driver ≥ 520.61.05: first driver with Hopper support".
DriverFloor architecture_floor(const Catalog& c, const std::string& name, const ComputeCapability& cc);

// Reasons a GPU cannot be served by an image of `platform` ("x86_64",
// "aarch64") whose code bundles or installs cuDNN `cudnn` (empty: none):
// aarch64-only systems, cuDNN's compute-capability floor. Empty when none.
std::vector<std::string> gpu_image_limits(const Catalog& c, const std::string& name, const ComputeCapability& cc,
                                          const std::string& platform, const Version& cudnn);
// The two parts of it: "" when the limit holds.
std::string platform_limit(const Catalog& c, const std::string& name, const ComputeCapability& cc, const std::string& platform);
std::string cudnn_limit(const Catalog& c, const std::string& name, const ComputeCapability& cc, const Version& cudnn);

// "x86_64" / "aarch64" from an OCI architecture ("amd64", "arm64") or
// either spelling; empty when unknown.
std::string normalize_platform(std::string_view arch);

// "T4 (sm_75)" for a name, "sm_60 (P100)" for a capability, "sm_99" if unknown.
std::string gpu_label(const std::string& name, const ComputeCapability& cc, const Catalog& c);

}  // namespace kiln::catalog
