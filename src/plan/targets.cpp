// Which GPUs a combination serves, and which driver it needs.
//
// SASS for sm_XY runs on GPUs of the same major and an equal or higher
// minor; otherwise the driver JIT-compiles PTX of an equal or lower
// capability. Minor-version compatibility lets a CUDA X.Y runtime run on an
// older driver of the same major -- but only from SASS: PTX built by toolkit
// X.Y needs a driver at least as new as the one X.Y shipped with [S1, S2].
#include <algorithm>

#include <fmt/format.h>

#include "catalog/compat.h"
#include "plan/internal.h"
#include "util/text.h"

namespace kiln::plan::detail {

namespace {

using catalog::Catalog;
using catalog::CudaRelease;

// Arch list for images without PyTorch: the matrix's own, or SASS for each
// target the toolkit can build for plus PTX for the newest, so newer GPUs
// still run through JIT.
bool derive_arch(Combo& combo, const matrix::Matrix& m, const Catalog& c, const CudaRelease& cuda) {
  if (m.arch_list) {
    combo.arch = *ArchList::parse(m.arch_list->text);
    for (const auto& cc : combo.arch.sass)
      if (!cuda.can_target(cc)) {
        combo.status = Status::excluded;
        combo.rule = "cuda-sass";
        combo.reason = fmt::format("CUDA {} cannot target {}{}: its nvcc emits SASS for {} only (arch_list at {})",
                                   cuda.version.str(), cc.sm(), [&] {
                                     std::string n = c.gpu_name(cc);
                                     return n.empty() ? std::string() : " (" + n + ")";
                                   }(), cuda.sass_range(), m.arch_list->where.str());
        return false;
      }
    return true;
  }
  std::vector<ComputeCapability> wanted;
  for (const auto& t : m.targets) wanted.push_back(*c.resolve_gpu(t.text));
  if (wanted.empty()) wanted = cuda.sass;
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  for (const auto& cc : wanted)
    if (cuda.can_target(cc)) combo.arch.sass.push_back(cc);
  if (combo.arch.sass.empty() && !cuda.sass.empty()) combo.arch.sass.push_back(cuda.sass.back());
  combo.arch.ptx.push_back(combo.arch.sass.back());
  return true;
}

// The branch alternatives below the minor-version floor work only through
// forward compatibility (the cuda-compat package nvidia/cuda bases carry);
// images from distribution packages lack it, so they list only the
// branches their runtime really runs on.
std::string require_cuda(const CudaRelease& cuda, const Catalog& c, bool has_forward_compat) {
  std::string out = "cuda>=" + cuda.version.str();
  for (int branch : cuda.require_branches) {
    if (!has_forward_compat && static_cast<unsigned>(branch) < cuda.min_driver.major()) continue;
    for (const auto& brand : c.require_brands) out += fmt::format(" brand={},driver>={},driver<{}", brand, branch, branch + 1);
  }
  return out;
}

const CudaRelease& cuda_of(const Combo& combo, const Catalog& c) {
  return *c.find_cuda(Version::must(combo.axes.at("cuda")));
}

}  // namespace

TargetSupport support_of(const std::string& name, const ComputeCapability& cc, const ArchList& arch,
                         const CudaRelease& cuda, const Catalog& c) {
  TargetSupport t{name, cc};
  SupportVerdict v = support_for(arch, cc);
  t.support = v.support;
  if (v.support == Support::native) {
    t.via = v.via->sm();
    t.min_driver = catalog::driver_for(cuda, v.support).str();
  } else if (v.support == Support::ptx_jit) {
    t.via = v.via->compute();
    t.min_driver = catalog::driver_for(cuda, v.support).str();
  } else if (!cuda.can_target(cc) && (cuda.sass.empty() || cc < cuda.sass.front())) {
    t.reason = fmt::format("CUDA {} cannot target {}: its nvcc emits SASS for {} only", cuda.version.str(),
                           gpu_label(name, cc, c), cuda.sass_range());
  } else {
    t.reason = fmt::format("no SASS for {} and no PTX at or below {} in the arch list {}", gpu_label(name, cc, c),
                           cc.compute(), arch.str());
  }
  return t;
}

void resolve_targets(Combo& combo, const matrix::Matrix& m, const Catalog& c) {
  const CudaRelease& cuda = cuda_of(combo, c);
  if (combo.arch.empty() && !derive_arch(combo, m, c, cuda)) return;
  combo.require_cuda = require_cuda(cuda, c, combo.install.method == "nvidia-base");
  if (cuda.require_inferred)
    combo.inferred.push_back(fmt::format("NVIDIA_REQUIRE_CUDA driver branches for CUDA {} are inferred [S10]", cuda.version.str()));

  Version floor = cuda.min_driver;
  size_t served = 0;
  const TargetSupport* first_unsupported = nullptr;
  for (const auto& target : m.targets) {
    ComputeCapability cc = *c.resolve_gpu(target.text);
    combo.targets.push_back(support_of(target.text, cc, combo.arch, cuda, c));
  }
  for (const auto& t : combo.targets) {
    if (t.support == Support::unsupported) {
      if (!first_unsupported) first_unsupported = &t;
      continue;
    }
    ++served;
    floor = std::max(floor, Version::must(t.min_driver));
  }
  combo.min_driver = floor.str();

  const std::string& policy = m.policy.targets;
  bool fails = (policy == "all" && first_unsupported) || (policy == "any" && !combo.targets.empty() && served == 0);
  if (fails) {
    combo.status = Status::excluded;
    combo.rule = "target-unsupported";
    combo.reason = first_unsupported->reason;
  }
}

void answer_query(Combo& combo, const Query& q, const Catalog& c) {
  if (combo.status != Status::valid) {
    combo.usable = false;
    combo.why_not.push_back("excluded: " + combo.reason);
    return;
  }
  const CudaRelease& cuda = cuda_of(combo, c);
  auto [need, need_why] = catalog::runtime_floor(cuda);
  if (q.gpus.empty() && !combo.min_driver.empty() && Version::must(combo.min_driver) > need) {
    need = Version::must(combo.min_driver);
    need_why = fmt::format("a matrix target runs only through PTX JIT, which needs the CUDA {} driver ≥ {}",
                           cuda.version.str(), need.str());
  }
  for (const auto& name : q.gpus) {
    auto cc = c.resolve_gpu(name);
    if (!cc) throw InputError({"--gpu"}, fmt::format("unknown GPU \"{}\": give a catalogued name (T4, A100, H100, ...) or sm_XY", name));
    TargetSupport t = support_of(name, *cc, combo.arch, cuda, c);
    if (t.support == Support::unsupported) combo.why_not.push_back(t.reason);
    if (t.support == Support::ptx_jit && Version::must(t.min_driver) > need) {
      need = Version::must(t.min_driver);
      need_why = fmt::format("{} runs only through PTX {} (JIT), which needs the CUDA {} driver ≥ {}",
                             gpu_label(name, *cc, c), t.via, cuda.version.str(), need.str());
    }
    combo.query_gpus.push_back(std::move(t));
  }
  if (!q.driver.empty()) {
    Version driver = Version::must(q.driver);
    if (driver < need) combo.why_not.push_back(fmt::format("driver {} is too old: {}", q.driver, need_why));
  }
  combo.usable = combo.why_not.empty();
}

}  // namespace kiln::plan::detail
