#include "catalog/compat.h"

#include <fmt/format.h>

namespace kiln::catalog {

DriverFloor runtime_floor(const CudaRelease& cuda) {
  return {cuda.min_driver, fmt::format("CUDA {} runtime needs ≥ {} (minor-version compatibility)", cuda.version.str(),
                                       cuda.min_driver.str())};
}

Version driver_for(const CudaRelease& cuda, Support s) {
  return s == Support::ptx_jit ? cuda.driver : cuda.min_driver;
}

const CudaRelease* release_for(const Catalog& c, const Version& cuda) {
  const Version wanted = cuda.prefix(2);
  const CudaRelease* pick = nullptr;
  for (const auto& r : c.cuda) {
    if (r.version.major() != wanted.major() || r.version.prefix(2) < wanted) continue;
    if (!pick || r.version < pick->version) pick = &r;
  }
  return pick;
}

const CudaRelease* release_for_ptx_isa(const Catalog& c, const Version& isa) {
  const CudaRelease* pick = nullptr;
  for (const auto& r : c.cuda) {
    if (r.ptx_isa.empty() || r.ptx_isa < isa) continue;
    if (!pick || r.version < pick->version) pick = &r;
  }
  return pick;
}

std::string gpu_label(const std::string& name, const ComputeCapability& cc, const Catalog& c) {
  std::string known = c.gpu_name(cc);
  if (ComputeCapability::parse(name)) return known.empty() ? cc.sm() : fmt::format("{} ({})", cc.sm(), known);
  return fmt::format("{} ({})", name, cc.sm());
}

}  // namespace kiln::catalog
