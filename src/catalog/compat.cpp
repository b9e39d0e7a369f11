#include "catalog/compat.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "util/text.h"

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

namespace kiln::catalog {

namespace {

// "H100 (sm_90, Hopper)", "sm_90 (H100, Hopper)": the GPU with its architecture.
std::string arch_label(const Catalog& c, const std::string& name, const ComputeCapability& cc, const Architecture* a) {
  std::string label = gpu_label(name, cc, c);
  if (!a) return label;
  label.pop_back();  // ")"
  return label + ", " + a->name + ")";
}

}  // namespace

bool RequireCuda::Alternative::admits(const Version& driver) const {
  return (driver_min.empty() || driver >= driver_min) && (driver_below.empty() || driver < driver_below);
}

std::optional<RequireCuda> RequireCuda::parse(std::string_view text, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<RequireCuda> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  RequireCuda out;
  for (std::string_view token : split(text, ' ')) {
    if (token.empty()) continue;
    Alternative alt;
    bool is_cuda = false;
    for (std::string_view cond : split(token, ',')) {
      auto value = [&](std::string_view prefix) { return cond.substr(prefix.size()); };
      if (cond.starts_with("cuda>=")) {
        auto v = Version::parse(value("cuda>="));
        if (!v) return fail(fmt::format("\"{}\" is not cuda>=X.Y", cond));
        if (!out.cuda.empty()) return fail("more than one cuda>= condition");
        out.cuda = *v;
        is_cuda = true;
      } else if (cond.starts_with("brand=")) {
        alt.brand = std::string(value("brand="));
        if (alt.brand.empty()) return fail("empty brand=");
      } else if (cond.starts_with("driver>=")) {
        auto v = Version::parse(value("driver>="));
        if (!v) return fail(fmt::format("\"{}\" is not driver>=N", cond));
        alt.driver_min = *v;
      } else if (cond.starts_with("driver<")) {
        auto v = Version::parse(value("driver<"));
        if (!v) return fail(fmt::format("\"{}\" is not driver<N", cond));
        alt.driver_below = *v;
      } else {
        return fail(fmt::format("unknown condition \"{}\"", cond));
      }
    }
    if (is_cuda) {
      if (!alt.brand.empty() || !alt.driver_min.empty() || !alt.driver_below.empty())
        return fail(fmt::format("\"{}\" mixes cuda>= with other conditions", token));
      continue;
    }
    out.alternatives.push_back(std::move(alt));
  }
  if (out.cuda.empty() && out.alternatives.empty()) return fail("no condition");
  return out;
}

Version driver_cuda(const Catalog& c, const Version& driver) {
  Version best;
  for (const auto& r : c.cuda) {
    Version first = r.first_driver();
    if (!first.empty() && first.major() <= driver.major() && (best.empty() || r.version > best)) best = r.version;
  }
  return best;
}

RequireAnswer answer_require_cuda(const Catalog& c, const RequireCuda& req, const Version& driver) {
  RequireAnswer a;
  Version reports = driver_cuda(c, driver);
  if (!req.cuda.empty() && !reports.empty() && reports >= req.cuda) return a;
  for (const auto& alt : req.alternatives)
    if (alt.admits(driver)) {
      if (alt.brand.empty()) return a;  // a driver range for every brand
      if (std::find(a.brands.begin(), a.brands.end(), alt.brand) == a.brands.end()) a.brands.push_back(alt.brand);
    }
  // Why `cuda>=X.Y` fails, in the terms a user can check: X.Y's first driver.
  std::string fails = "the string has no cuda>= alternative";
  if (!req.cuda.empty()) {
    const CudaRelease* wanted = release_for(c, req.cuda);
    fails = wanted ? fmt::format("driver {} predates CUDA {} (first driver {}), so cuda>={} fails", driver.str(),
                                 req.cuda.str(), wanted->first_driver().str(), req.cuda.str())
                   : fmt::format("the catalog knows no driver for CUDA {}, so cuda>={} is taken to fail", req.cuda.str(),
                                 req.cuda.str());
  }
  if (!a.brands.empty()) {
    a.kind = RequireAnswer::brands_only;
    a.why = fmt::format("{}; NVIDIA_REQUIRE_CUDA admits branch R{} only on brands {} (the container runtime refuses other GPUs)",
                        fails, driver.major(), join(a.brands, ", "));
    return a;
  }
  std::vector<std::string> branches;
  for (const auto& alt : req.alternatives) {
    std::string b = alt.driver_min.empty() ? "any" : "R" + std::to_string(alt.driver_min.major());
    if (std::find(branches.begin(), branches.end(), b) == branches.end()) branches.push_back(b);
  }
  a.kind = RequireAnswer::refused;
  a.why = fmt::format("the container runtime refuses it: {}, and NVIDIA_REQUIRE_CUDA admits no alternative for branch R{} "
                      "(its alternatives: {})",
                      fails, driver.major(), branches.empty() ? "none" : join(branches, ", "));
  return a;
}

DriverFloor architecture_floor(const Catalog& c, const std::string& name, const ComputeCapability& cc) {
  const Architecture* a = c.architecture_of(cc);
  if (!a || a->first_driver.empty()) return {};
  return {a->first_driver, fmt::format("{} needs driver ≥ {}: first driver with {} support", arch_label(c, name, cc, a),
                                       a->first_driver.str(), a->name)};
}

std::vector<std::string> gpu_driver_limits(const Catalog& c, const std::string& name, const ComputeCapability& cc,
                                           const Version& driver) {
  std::vector<std::string> out;
  const Architecture* a = c.architecture_of(cc);
  if (!a) return out;
  if (!a->first_driver.empty() && driver < a->first_driver)
    out.push_back(fmt::format("driver {} is too old for {}: it needs ≥ {}, the first driver with {} support", driver.str(),
                              arch_label(c, name, cc, a), a->first_driver.str(), a->name));
  if (a->last_branch && driver.major() > *a->last_branch)
    out.push_back(fmt::format("driver {} no longer supports {}: {}'s last driver branch is R{}; {}.xx dropped it", driver.str(),
                              arch_label(c, name, cc, a), a->name, *a->last_branch, driver.major()));
  return out;
}

std::string platform_limit(const Catalog& c, const std::string& name, const ComputeCapability& cc, const std::string& platform) {
  const Gpu* g = c.find_gpu(name);
  if (!g || platform.empty() || g->runs_on(platform)) return "";
  return fmt::format("{} comes only in {} systems: an {} image never runs on it", gpu_label(name, cc, c), join(g->platforms, "/"),
                     platform);
}

std::string cudnn_limit(const Catalog& c, const std::string& name, const ComputeCapability& cc, const Version& cudnn) {
  const CudnnRelease* entry = cudnn.empty() ? nullptr : c.cudnn_entry_for(cudnn);
  if (!entry || entry->cc.low.empty()) return "";
  ComputeCapability floor{entry->cc.low.major(), entry->cc.low.minor(), 0};
  if (ComputeCapability{cc.major, cc.minor, 0} >= floor) return "";
  return fmt::format("cuDNN {} does not serve {}: {} supports compute capability {} and up only", cudnn.str(),
                     gpu_label(name, cc, c),
                     entry->version.prefix(2) == cudnn.prefix(2)
                         ? "cuDNN " + cudnn.prefix(2).str()
                         : fmt::format("cuDNN {} (the nearest release the catalog describes)", entry->version.str()),
                     entry->cc.low.str());
}

std::vector<std::string> gpu_image_limits(const Catalog& c, const std::string& name, const ComputeCapability& cc,
                                          const std::string& platform, const Version& cudnn) {
  std::vector<std::string> out;
  for (std::string why : {platform_limit(c, name, cc, platform), cudnn_limit(c, name, cc, cudnn)})
    if (!why.empty()) out.push_back(std::move(why));
  return out;
}

std::string normalize_platform(std::string_view arch) {
  std::string a = lower(arch);
  if (a.starts_with("linux/")) a = a.substr(6);
  if (a == "amd64" || a == "x86_64" || a == "x86-64") return "x86_64";
  if (a == "arm64" || a == "aarch64" || a.starts_with("arm64/")) return "aarch64";
  return "";
}

}  // namespace kiln::catalog
