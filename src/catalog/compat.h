// Compatibility rules on top of the catalog's facts, shared by the plan
// (arch lists it will build) and the audit (fat binaries it reads), so both
// give the same answer and the same words [S1, S2, S11].
#pragma once
#include <string>

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

// "T4 (sm_75)" for a name, "sm_60 (P100)" for a capability, "sm_99" if unknown.
std::string gpu_label(const std::string& name, const ComputeCapability& cc, const Catalog& c);

}  // namespace kiln::catalog
