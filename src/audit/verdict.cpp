// Verdicts: the catalog's rules (catalog/compat.h, util/cc.h) applied to what
// an image's fat binaries and components say. Driver floors follow
// CATALOG-FACTS [S1, S2]: minor-version compatibility for SASS, the PTX's
// own toolkit driver for JIT -- that toolkit told by the PTX ISA version in
// the entry header [S11], else assumed to be the image's runtime.
#include "audit/verdict.h"

#include <algorithm>

#include <fmt/format.h>

#include "catalog/compat.h"
#include "util/diag.h"

namespace kiln::audit {

namespace {

using catalog::Catalog;
using catalog::CudaRelease;

std::string_view base_name(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// The newest parseable version of one evidence kind.
std::optional<CudaRuntime> newest(const std::vector<Found>& found) {
  std::optional<CudaRuntime> best;
  for (const auto& f : found) {
    auto v = Version::parse(f.version);
    if (v && (!best || *v > best->version)) best = CudaRuntime{*v, f.path};
  }
  return best;
}

std::string unsupported_reason(const FatbinInfo& info, const GpuTarget& gpu) {
  if (info.ptx.empty()) return fmt::format("no SASS for {} and no PTX", gpu.cc.sm());
  std::vector<std::string> ptx;
  for (const auto& a : info.ptx) ptx.push_back(a.compute());
  return fmt::format("no SASS for {} and PTX only for {}", gpu.cc.sm(), join(ptx));
}

// The driver a PTX entry needs: its toolkit's, told by the PTX ISA version
// when the header records it, else the image's runtime.
void ptx_floor(LibraryVerdict& v, const FatbinInfo& info, const Arch& via, const CudaRelease* runtime,
               const Catalog& c) {
  if (auto isa = info.ptx_isa(via)) {
    const std::string isa_text = fmt::format("{}.{}", isa->first, isa->second);
    if (const CudaRelease* made = catalog::release_for_ptx_isa(c, Version::must(isa_text))) {
      v.min_driver = made->driver.str();
      v.driver_why = fmt::format("{} runs only through PTX {} (JIT); PTX ISA {} is written by CUDA {}, whose driver is ≥ {}",
                                 v.path, v.via, isa_text, made->version.str(), v.min_driver);
      return;
    }
    if (runtime) {  // newer than the catalog: at least the runtime's driver
      v.min_driver = runtime->driver.str();
      v.driver_why = fmt::format("{} runs only through PTX {} (JIT) of PTX ISA {}, newer than any CUDA release in the catalog; "
                                 "at least the CUDA {} driver ≥ {}", v.path, v.via, isa_text, runtime->version.str(), v.min_driver);
    }
    return;
  }
  if (!runtime) return;
  v.min_driver = runtime->driver.str();
  v.driver_why = fmt::format("{} runs only through PTX {} (JIT); the fat binary records no PTX ISA, so taking the CUDA {} "
                             "runtime as its toolkit: driver ≥ {}", v.path, v.via, runtime->version.str(), v.min_driver);
}

// The image's cuDNN: the newest version found, empty when none.
Version cudnn_of(const Components& comp) {
  Version best;
  for (const auto& f : comp.cudnn)
    if (auto v = Version::parse(f.version); v && *v > best) best = *v;
  return best;
}

GpuVerdict judge_gpu(GpuTarget gpu, const std::vector<FatbinScan>& scans, const CudaRelease* runtime,
                     const Catalog& c, const std::string& platform, const Version& cudnn) {
  // A renamed capability (Thor: sm_101 before CUDA 13.0) as the runtime knows it.
  if (const catalog::Gpu* known = c.find_gpu(gpu.name); known && runtime) gpu.cc = known->cc_under(runtime->version);
  GpuVerdict g{gpu};
  catalog::DriverFloor floor = runtime ? catalog::runtime_floor(*runtime) : catalog::DriverFloor{};
  for (const auto& scan : scans) {
    if (!scan.info) {  // fail closed: what it needs is not known
      LibraryVerdict lv{scan.path};
      lv.unknown = true;
      lv.reason = "fat binary unreadable: " + scan.error;
      g.unknown.push_back(lv.path);
      g.libraries.push_back(std::move(lv));
      continue;
    }
    if (!scan.info->has_device_code()) continue;
    LibraryVerdict lv = judge_library(scan.path, *scan.info, gpu, runtime, c);
    const catalog::LibraryRole* role = lv.support == Support::unsupported ? c.library_role(scan.path) : nullptr;
    if (role && !role->core) {  // only what it does fails here
      lv.optional = true;
      lv.operations = role->operations;
      g.partial.push_back(lv.path);
      g.failing_operations.push_back(fmt::format("{}: {} has no {} code", base_name(lv.path), role->operations, gpu.cc.sm()));
    } else if (lv.support == Support::unsupported) {
      g.support = Support::unsupported;
      g.unsupported.push_back(lv.path);
    } else if (lv.support == Support::ptx_jit) {
      if (g.support == Support::native) g.support = Support::ptx_jit;
      g.jit.push_back(lv.path);
      if (!lv.min_driver.empty() && Version::must(lv.min_driver) > floor.driver)
        floor = {Version::must(lv.min_driver), catalog::gpu_label(gpu.name, gpu.cc, c) + ": " + lv.driver_why};
    }
    g.libraries.push_back(std::move(lv));
  }
  if (!g.unknown.empty()) g.support = Support::unsupported;
  g.no_device_code = g.libraries.empty();
  catalog::DriverFloor arch = catalog::architecture_floor(c, gpu.name, gpu.cc);
  if (!arch.driver.empty() && (floor.driver.empty() || arch.driver > floor.driver)) floor = arch;
  if (auto limits = catalog::gpu_image_limits(c, gpu.name, gpu.cc, platform, cudnn); !limits.empty()) {
    g.support = Support::unsupported;
    g.reason = limits.front();
  }
  if (g.support != Support::unsupported && !floor.driver.empty()) {
    g.min_driver = floor.driver.str();
    g.driver_why = floor.why;
  }
  return g;
}

// Everything a reader should double-check, none of it fatal.
void runtime_warnings(ImageVerdict& v, const Components& comp, const std::vector<FatbinScan>& scans) {
  std::vector<std::string> minors;
  for (const auto& f : comp.cuda_runtime)
    if (auto ver = Version::parse(f.version); ver && std::find(minors.begin(), minors.end(), ver->prefix(2).str()) == minors.end())
      minors.push_back(ver->prefix(2).str());
  if (minors.size() > 1)
    v.warnings.push_back(fmt::format("several CUDA runtimes ({}): the driver floor follows the newest", join(minors)));
  if (v.runtime && comp.env_require_cuda.starts_with("cuda>=")) {
    std::string req = comp.env_require_cuda.substr(6, comp.env_require_cuda.find(' ') - 6);
    auto r = Version::parse(req);
    if (r && r->prefix(2) != v.runtime->version.prefix(2))
      v.warnings.push_back(fmt::format("NVIDIA_REQUIRE_CUDA asks for cuda>={} but the image's CUDA runtime is {} ({})", req,
                                       v.runtime->version.str(), v.runtime->source));
  }
  for (const auto& s : scans)
    if (s.info && !s.error.empty()) {
      v.warnings.push_back(fmt::format("{}: {}", s.path, s.error));
    } else if (!s.info) {
      v.warnings.push_back(fmt::format("{}: fat binary unreadable: {}: the GPUs and driver it needs are unknown", s.path, s.error));
      v.unreadable.push_back(fmt::format("{}: fat binary unreadable: {}", s.path, s.error));
    }
}

}  // namespace

const char* support_name(const GpuVerdict& g) {
  if (g.support == Support::unsupported)
    return g.reason.empty() && g.unsupported.empty() && !g.unknown.empty() ? "unknown" : to_string(g.support);
  if (g.no_device_code) return "no device code";
  if (!g.partial.empty()) return "partial";
  return to_string(g.support);
}

std::vector<std::string> default_gpu_names() { return {"P100", "V100", "T4", "A100", "L4", "H100", "B200"}; }

std::vector<GpuTarget> resolve_gpus(const std::vector<std::string>& names, const Catalog& c) {
  std::vector<GpuTarget> out;
  for (const auto& name : names) {
    auto cc = c.resolve_gpu(name);
    if (!cc)
      throw InputError({"--gpu"}, fmt::format("unknown GPU \"{}\": give a catalogued name (T4, A100, H100, ...) or sm_XY", name));
    out.push_back({name, *cc});
  }
  return out;
}

std::optional<CudaRuntime> cuda_runtime_of(const Components& comp) {
  if (auto r = newest(comp.cuda_runtime)) return r;
  if (auto r = newest(comp.cuda_toolkit)) return r;
  if (auto v = Version::parse(comp.env_cuda_version)) return CudaRuntime{*v, "env:CUDA_VERSION"};
  if (comp.torch)
    if (auto v = Version::parse(comp.torch->cuda)) return CudaRuntime{*v, comp.torch->path + " (torch.version.cuda)"};
  return std::nullopt;
}

LibraryVerdict judge_library(const std::string& path, const FatbinInfo& info, const GpuTarget& gpu,
                             const CudaRelease* runtime, const Catalog& c) {
  LibraryVerdict v{path};
  const ArchSupport s = arch_support(info, gpu.cc.major, gpu.cc.minor);
  switch (s.match) {
    case ArchMatch::none:
      v.reason = unsupported_reason(info, gpu);
      break;
    case ArchMatch::ptx_jit:
      v.support = Support::ptx_jit;
      v.via = s.via->compute();
      ptx_floor(v, info, *s.via, runtime, c);
      break;
    default:
      v.support = Support::native;
      v.via = s.via->sm();
  }
  return v;
}

ImageVerdict judge(const Components& comp, const std::vector<FatbinScan>& scans, const std::vector<GpuTarget>& gpus,
                   const Catalog& c) {
  ImageVerdict v;
  v.runtime = cuda_runtime_of(comp);
  if (v.runtime) {
    v.release = catalog::release_for(c, v.runtime->version);
    if (!v.release)
      v.warnings.push_back(fmt::format("CUDA {} ({}) is newer than any release of its major in the catalog: driver floor unknown",
                                       v.runtime->version.str(), v.runtime->source));
  } else {
    v.warnings.push_back("no CUDA runtime found (libcudart, version.json, CUDA_VERSION, torch): driver floor unknown");
  }
  runtime_warnings(v, comp, scans);
  v.catalog = &c;
  v.platform = catalog::normalize_platform(comp.architecture);
  v.require_cuda = comp.env_require_cuda;
  const Version cudnn = cudnn_of(comp);
  catalog::DriverFloor floor = v.release ? catalog::runtime_floor(*v.release) : catalog::DriverFloor{};
  for (const auto& gpu : gpus) {
    GpuVerdict g = judge_gpu(gpu, scans, v.release, c, v.platform, cudnn);
    if (!g.min_driver.empty() && Version::must(g.min_driver) > floor.driver) floor = {Version::must(g.min_driver), g.driver_why};
    v.gpus.push_back(std::move(g));
  }
  if (!v.unreadable.empty()) {  // an unreadable library's PTX may need more: no floor can be promised
    v.driver_why = fmt::format("unknown: {}{}", v.unreadable.front(),
                               v.unreadable.size() > 1 ? fmt::format(" (and {} more libraries)", v.unreadable.size() - 1) : "");
  } else if (!floor.driver.empty()) {
    v.min_driver = floor.driver.str();
    v.driver_why = floor.why;
  }
  const bool any_code = std::any_of(scans.begin(), scans.end(), [](const FatbinScan& s) { return s.info && s.info->has_device_code(); });
  if (!any_code && v.unreadable.empty()) v.warnings.push_back("no library in the image carries CUDA device code: nothing here limits the GPU");
  return v;
}

namespace {

// libtorch_cuda.so is compiled for TORCH_CUDA_ARCH_LIST itself; the CUDA
// libraries beside it (cuBLAS, cuDNN, NCCL) keep NVIDIA's own lists.
bool built_for_the_list(const std::string& path) {
  const auto slash = path.rfind('/');
  return path.substr(slash == std::string::npos ? 0 : slash + 1) == "libtorch_cuda.so";
}

bool carries(const std::vector<Arch>& entries, const ComputeCapability& cc) {
  return std::any_of(entries.begin(), entries.end(), [&](const Arch& a) { return a.major == cc.major && a.minor == cc.minor; });
}

}  // namespace

std::vector<std::string> arch_promise_gaps(const std::vector<FatbinScan>& scans, const ArchList& promised) {
  std::vector<ComputeCapability> ccs = promised.sass;  // each capability the list names
  for (const auto& p : promised.ptx)
    if (std::find(ccs.begin(), ccs.end(), p) == ccs.end()) ccs.push_back(p);
  std::vector<std::string> gaps;
  for (const auto& s : scans) {
    // The promise is about the shared libraries workloads load; a tool's
    // own kernels (Debian's nvprof: sm_52 only) are audited, not promised.
    if (base_name(s.path).find(".so") == std::string_view::npos) continue;
    if (!s.info || !s.error.empty()) {  // unreadable, or not even ELF: kiln built it, so either is a defect
      gaps.push_back(fmt::format("{}: fat binary unreadable ({}): the arch list {} cannot be checked", s.path, s.error, promised.str()));
      continue;
    }
    if (!s.info->has_device_code()) continue;
    for (const auto& cc : ccs)
      if (arch_support(*s.info, cc.major, cc.minor).match == ArchMatch::none)
        gaps.push_back(fmt::format("{} cannot run on {}: {}", s.path, cc.str(), unsupported_reason(*s.info, {cc.sm(), cc})));
    if (!built_for_the_list(s.path)) continue;
    for (const auto& cc : promised.sass)
      if (!carries(s.info->sass, cc)) gaps.push_back(fmt::format("{} carries no SASS for {} ({} promises it)", s.path, cc.sm(), promised.str()));
    for (const auto& cc : promised.ptx)
      if (!carries(s.info->ptx, cc))
        gaps.push_back(fmt::format("{} carries no PTX for {} ({} promises it: newer GPUs cannot JIT it)", s.path, cc.compute(), promised.str()));
  }
  return gaps;
}

namespace {

// The image's NVIDIA_REQUIRE_CUDA against the driver (catalog::answer_require_cuda);
// nullopt when the image has none or it cannot be read.
std::optional<catalog::RequireAnswer> require_answer(const ImageVerdict& v, const Version& driver) {
  if (!v.catalog || v.require_cuda.empty()) return std::nullopt;
  auto req = catalog::RequireCuda::parse(v.require_cuda);
  if (!req) return std::nullopt;
  return catalog::answer_require_cuda(*v.catalog, *req, driver);
}

}  // namespace

std::vector<std::string> why_not_on_driver(const ImageVerdict& v, const Version& driver) {
  std::vector<std::string> why;
  for (const auto& g : v.gpus) {
    if (g.support != Support::unsupported) {
      if (v.catalog)
        for (auto& limit : catalog::gpu_driver_limits(*v.catalog, g.gpu.name, g.gpu.cc, driver)) why.push_back(std::move(limit));
      continue;
    }
    if (!g.reason.empty()) {
      why.push_back(fmt::format("{} ({}) unsupported: {}", g.gpu.name, g.gpu.cc.sm(), g.reason));
      continue;
    }
    const bool unknown = g.unsupported.empty();  // only unreadable libraries
    const LibraryVerdict* first = nullptr;
    for (const auto& l : g.libraries)
      if (l.support == Support::unsupported && l.unknown == unknown && !first) first = &l;
    if (!first) continue;
    const std::size_t n = unknown ? g.unknown.size() : g.unsupported.size();
    std::string more = n > 1 ? fmt::format(" (and {} more libraries)", n - 1) : "";
    why.push_back(fmt::format("{} ({}) {}: {}: {}{}", g.gpu.name, g.gpu.cc.sm(), support_name(g), first->path, first->reason, more));
  }
  // Below the floor on a branch the image's NVIDIA_REQUIRE_CUDA admits for
  // some brands, the image runs through its forward-compatibility libraries
  // (the string's author vouches for them): a condition, not a failure.
  auto req = require_answer(v, driver);
  if (req && req->kind == catalog::RequireAnswer::refused) why.push_back(req->why);
  const bool forward = req && req->kind == catalog::RequireAnswer::brands_only;
  if (!v.unreadable.empty()) {
    for (const auto& u : v.unreadable) why.push_back("minimum driver unknown: " + u);
  } else if (v.min_driver.empty()) {
    if (v.runtime || std::any_of(v.gpus.begin(), v.gpus.end(), [](const GpuVerdict& g) { return !g.libraries.empty(); }))
      why.push_back(v.runtime ? fmt::format("minimum driver unknown: CUDA {} is not in the catalog", v.runtime->version.str())
                              : std::string("minimum driver unknown: no CUDA runtime version found in the image"));
  } else if (driver < Version::must(v.min_driver) && !forward) {
    why.push_back(fmt::format("driver {} is too old: {}", driver.str(), v.driver_why));
  }
  return why;
}

std::vector<std::string> conditions_on_driver(const ImageVerdict& v, const Version& driver) {
  auto req = require_answer(v, driver);
  if (!req || req->kind != catalog::RequireAnswer::brands_only) return {};
  bool below = !v.min_driver.empty() && driver < Version::must(v.min_driver);
  return {req->why + (below ? "; below the image's driver floor it runs only through forward compatibility "
                              "(cuda-compat), which NVIDIA supports on data-center GPUs"
                            : "; there it runs through minor-version compatibility")};
}

}  // namespace kiln::audit
