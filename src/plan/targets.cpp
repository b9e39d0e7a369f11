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
#include "util/version.h"

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
  for (const auto& t : m.targets) wanted.push_back(*c.resolve_gpu(t.text, cuda.version));
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
// branches their runtime really runs on. NVIDIA's own string, when the
// catalog has it, is used byte for byte for nvidia/cuda bases; for package
// images the same alternatives are dropped from it, the rest kept as written.
std::string require_cuda(const CudaRelease& cuda, const Catalog& c, bool has_forward_compat) {
  auto below_floor = [&](unsigned branch) { return !has_forward_compat && branch < cuda.min_driver.major(); };
  if (!cuda.require_cuda.empty()) {
    if (has_forward_compat) return cuda.require_cuda;
    std::vector<std::string> kept;
    for (std::string_view token : split(cuda.require_cuda, ' ')) {
      if (token.empty()) continue;
      auto alt = catalog::RequireCuda::parse(token);
      bool drop = alt && alt->cuda.empty() && !alt->alternatives.empty() && !alt->alternatives[0].driver_min.empty() &&
                  below_floor(alt->alternatives[0].driver_min.major());
      if (!drop) kept.emplace_back(token);
    }
    return join(kept, " ");
  }
  std::string out = "cuda>=" + cuda.version.str();
  for (int branch : cuda.require_branches) {
    if (below_floor(static_cast<unsigned>(branch))) continue;
    for (const auto& brand : c.require_brands) out += fmt::format(" brand={},driver>={},driver<{}", brand, branch, branch + 1);
  }
  return out;
}

const CudaRelease& cuda_of(const Combo& combo, const Catalog& c) {
  return *c.find_cuda(Version::must(combo.axes.at("cuda")));
}

}  // namespace

TargetSupport support_of(const std::string& name, const Combo& combo, const CudaRelease& cuda, const Catalog& c) {
  // The GPU as this CUDA release knows it (Thor: sm_101 before 13.0).
  ComputeCapability cc = *c.resolve_gpu(name, cuda.version);
  TargetSupport t{name, cc};
  const ArchList& arch = combo.arch;
  const std::string& cudnn = combo.versions.cudnn;
  // The platform first, then what the arch list and toolkit say, then cuDNN.
  if (std::string why = catalog::platform_limit(c, name, cc, combo.platform); !why.empty()) {
    t.reason = why;
    return t;
  }
  SupportVerdict v = support_for(arch, cc);
  std::string cudnn_why = catalog::cudnn_limit(c, name, cc, cudnn.empty() ? Version{} : Version::must(cudnn));
  if (v.support != Support::unsupported && !cudnn_why.empty()) {
    t.reason = cudnn_why;
    return t;
  }
  t.support = v.support;
  if (v.support == Support::native || v.support == Support::ptx_jit) {
    t.via = v.support == Support::native ? v.via->sm() : v.via->compute();
    Version need = catalog::driver_for(cuda, v.support);
    t.driver_why = v.support == Support::native
                       ? catalog::runtime_floor(cuda).why
                       : fmt::format("{} runs only through PTX {} (JIT), which needs the CUDA {} driver ≥ {}",
                                     gpu_label(name, cc, c), t.via, cuda.version.str(), need.str());
    catalog::DriverFloor arch_floor = catalog::architecture_floor(c, name, cc);
    if (!arch_floor.driver.empty() && arch_floor.driver > need) {
      need = arch_floor.driver;
      t.driver_why = arch_floor.why;
    }
    t.min_driver = need.str();
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
  if (cuda.require_cuda.empty() && cuda.require_inferred)
    combo.inferred.push_back(fmt::format("NVIDIA_REQUIRE_CUDA driver branches for CUDA {} are inferred [S10]", cuda.version.str()));

  Version floor = cuda.min_driver;
  size_t served = 0;
  const TargetSupport* first_unsupported = nullptr;
  for (const auto& target : m.targets) combo.targets.push_back(support_of(target.text, combo, cuda, c));
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

namespace {

// The driver against NVIDIA_REQUIRE_CUDA (catalog::answer_require_cuda):
// refused, or admitted only on some brands -- through minor-version
// compatibility at or above the runtime floor, through the cuda-compat
// package of nvidia/cuda bases below it. Returns whether the runtime floor
// still applies.
bool check_require(Combo& combo, const Catalog& c, const Version& driver, const Version& need) {
  auto req = catalog::RequireCuda::parse(combo.require_cuda);
  if (!req) return true;
  catalog::RequireAnswer a = catalog::answer_require_cuda(c, *req, driver);
  if (a.kind == catalog::RequireAnswer::refused) {
    combo.why_not.push_back(a.why);
    return true;
  }
  if (a.kind != catalog::RequireAnswer::brands_only) return true;
  bool forward = driver < need && combo.install.method == "nvidia-base";
  combo.forward_compat = forward;
  combo.conditions.push_back(
      a.why + (forward ? "; below the minor-version floor it runs only through forward compatibility (the cuda-compat "
                         "package of the nvidia/cuda base), which NVIDIA supports on data-center GPUs"
                       : "; there it runs through minor-version compatibility"));
  return !forward;
}

}  // namespace

void answer_query(Combo& combo, const Query& q, const Catalog& c) {
  if (combo.status != Status::valid) {
    combo.usable = false;
    combo.why_not.push_back("excluded: " + combo.reason);
    return;
  }
  const CudaRelease& cuda = cuda_of(combo, c);
  // The runtime's floor and PTX JIT's; an architecture's own driver limits
  // are checked per GPU below, since forward compatibility never lifts them.
  auto [need, need_why] = catalog::runtime_floor(cuda);
  std::vector<TargetSupport> judged;
  for (const auto& name : q.gpus) {
    if (!c.resolve_gpu(name))
      throw InputError({"--gpu"}, fmt::format("unknown GPU \"{}\": give a catalogued name (T4, A100, H100, ...) or sm_XY", name));
    TargetSupport t = support_of(name, combo, cuda, c);
    if (t.support == Support::unsupported) combo.why_not.push_back(t.reason);
    combo.query_gpus.push_back(t);
    judged.push_back(std::move(t));
  }
  if (q.gpus.empty())  // no --gpu: the matrix targets the combination serves
    for (const auto& t : combo.targets)
      if (t.support != Support::unsupported) judged.push_back(t);
  for (const auto& t : judged) {
    if (t.support != Support::ptx_jit) continue;
    Version jit = catalog::driver_for(cuda, t.support);
    if (jit > need) {
      need = jit;
      need_why = fmt::format("{} runs only through PTX {} (JIT), which needs the CUDA {} driver ≥ {}",
                             gpu_label(t.name, t.cc, c), t.via, cuda.version.str(), need.str());
    }
  }
  if (!q.driver.empty()) {
    Version driver = Version::must(q.driver);
    for (const auto& t : judged)
      if (t.support != Support::unsupported)
        for (auto& why : catalog::gpu_driver_limits(c, t.name, t.cc, driver)) combo.why_not.push_back(std::move(why));
    if (check_require(combo, c, driver, need) && driver < need)
      combo.why_not.push_back(fmt::format("driver {} is too old: {}", q.driver, need_why));
  }
  combo.usable = combo.why_not.empty();
}

}  // namespace kiln::plan::detail
