// The matrix policy decides: every required check passed on this image,
// the gpu check on a runner of each required GPU class.
#include <algorithm>

#include <fmt/format.h>

#include "util/cc.h"
#include "verify/internal.h"

namespace kiln::verify::detail {

namespace {

const Runner* runner_named(const std::vector<Runner>& runners, const std::string& name) {
  for (const auto& r : runners)
    if (r.name == name) return &r;
  return nullptr;
}

// The class a gpu check vouches for: the one its GPU reported (placement,
// measured) when it says, else the runner's configured classes. A check on
// a runner of another platform vouches for nothing (recorded before runners
// declared their platform, or by a runner since redeclared).
bool check_is_class(const CheckResult& c, const std::string& gpu_class, const std::vector<Runner>& runners,
                    const std::string& platform) {
  if (const Runner* r = runner_named(runners, c.runner); r && r->platform != platform) return false;
  if (c.detail.contains("placement") && c.detail["placement"].is_object()) {
    std::string measured = c.detail["placement"].value("gpu_class", "");
    if (!measured.empty()) return measured == gpu_class;
  }
  const Runner* r = runner_named(runners, c.runner);
  return r && std::count(r->gpu_classes.begin(), r->gpu_classes.end(), gpu_class) > 0;
}

// One cell of the policy's coverage: a class, a GPU count (0: any) and a
// driver branch ("": any).
struct Need {
  std::string gpu_class;
  int count = 0;
  std::string branch;
  std::string str() const {
    std::string s = gpu_class;
    if (count > 0) s += fmt::format(" with {} GPU(s)", count);
    if (!branch.empty()) s += " on driver branch " + branch;
    return s;
  }
};

bool meets(const CheckResult& c, const Need& n, const std::vector<Runner>& runners, const std::string& platform) {
  if (c.check != "gpu" || c.status != CheckStatus::passed || !check_is_class(c, n.gpu_class, runners, platform)) return false;
  const nlohmann::json place = c.detail.contains("placement") ? c.detail["placement"] : nlohmann::json::object();
  if (n.count > 0 && place.value("gpu_count", 0) != n.count) return false;
  if (!n.branch.empty() && place.value("driver_branch", "") != n.branch) return false;
  return true;
}

std::vector<Need> needs(const matrix::Policy& policy, const std::string& gpu_class) {
  std::vector<int> counts = policy.gpu_counts.empty() ? std::vector<int>{0} : policy.gpu_counts;
  std::vector<std::string> branches = policy.driver_branches.empty() ? std::vector<std::string>{""} : policy.driver_branches;
  std::vector<Need> out;
  for (int n : counts)
    for (const auto& b : branches) out.push_back({gpu_class, n, b});
  return out;
}

std::string first_problem(const CheckResult& c) {
  return c.problems.empty() ? to_string(c.status) : c.problems.front();
}

// No GPU runner of the class serves the image's platform. Not a failure:
// the image waits for one (an x86_64 GPU host never vouches for arm64).
std::string awaiting_runner(const std::vector<Runner>& runners, const std::string& cls, const std::string& platform) {
  std::vector<std::string> elsewhere;
  for (const auto& r : runners)
    if (r.gpu != matrix::GpuMode::none && std::count(r.gpu_classes.begin(), r.gpu_classes.end(), cls) > 0)
      elsewhere.push_back(fmt::format("runner {} is {}", r.name, r.platform));
  if (platform == "linux/amd64" && elsewhere.empty()) return fmt::format("awaiting a GPU runner of class {}", cls);
  std::string out = fmt::format("awaiting a runner for {} with GPU class {}", platform, cls);
  if (!elsewhere.empty()) out += fmt::format(" ({})", fmt::join(elsewhere, ", "));
  return out;
}

}  // namespace

std::string class_refusal(const std::string& gpu_class, const ArchList& arch) {
  auto cc = ComputeCapability::parse(gpu_class);
  if (!cc || arch.empty() || support_for(arch, *cc).support != Support::unsupported) return "";
  return fmt::format("GPU class {} cannot run this image: its arch list {} has no SASS of compute capability {}.x at or "
                     "below {} and no PTX at or below {} (SASS runs on its own major version, PTX JIT-compiles only "
                     "for newer GPUs); it is never verified for {}",
                     gpu_class, arch.str(), cc->major, cc->str(), cc->str(), gpu_class);
}

void decide(ComboVerdict& v, const matrix::Policy& policy, const std::vector<Runner>& runners, const ArchList& arch,
            const std::string& platform) {
  std::vector<std::string> missing;
  for (const auto& cls : policy.gpu_classes)
    if (auto why = class_refusal(cls, arch); !why.empty()) missing.push_back(why);
  for (const auto& check : policy.verify) {
    if (check == "static") {
      auto it = std::find_if(v.checks.begin(), v.checks.end(), [](const CheckResult& c) { return c.check == "static"; });
      if (it == v.checks.end()) missing.push_back("static check not run");
      else if (it->status != CheckStatus::passed)
        missing.push_back(fmt::format("static check {}: {}", to_string(it->status), first_problem(*it)));
      continue;
    }
    for (const auto& cls : policy.gpu_classes) {
      if (!class_refusal(cls, arch).empty()) continue;  // refused above
      bool all_met = true;
      for (const auto& need : needs(policy, cls)) {
        if (std::any_of(v.checks.begin(), v.checks.end(), [&](const CheckResult& c) { return meets(c, need, runners, platform); }))
          continue;
        bool passed_elsewhere = std::any_of(v.checks.begin(), v.checks.end(), [&](const CheckResult& c) {
          return c.check == "gpu" && c.status == CheckStatus::passed && check_is_class(c, cls, runners, platform);
        });
        // A pass of the class that misses this cell's count or driver: say which cell.
        if (passed_elsewhere && (need.count > 0 || !need.branch.empty())) {
          missing.push_back(fmt::format("awaiting a gpu pass for {}", need.str()));
          all_met = false;
        } else if (!passed_elsewhere) {
          all_met = false;
        }
      }
      if (all_met) continue;
      if (std::any_of(v.checks.begin(), v.checks.end(), [&](const CheckResult& c) {
            return c.check == "gpu" && c.status == CheckStatus::passed && check_is_class(c, cls, runners, platform);
          }))
        continue;  // the class passed; the cells it misses are named above
      bool have_runner = std::any_of(runners.begin(), runners.end(), [&](const Runner& r) {
        return r.gpu != matrix::GpuMode::none && r.platform == platform &&
               std::count(r.gpu_classes.begin(), r.gpu_classes.end(), cls) > 0;
      });
      auto failed = std::find_if(v.checks.begin(), v.checks.end(),
                                 [&](const CheckResult& c) {
        const Runner* r = runner_named(runners, c.runner);
        return c.check == "gpu" && c.status != CheckStatus::passed && c.status != CheckStatus::no_gpu &&
               (!r || r->platform == platform);
      });
      if (failed != v.checks.end()) missing.push_back(fmt::format("gpu check {} on {}: {}", to_string(failed->status), failed->runner, first_problem(*failed)));
      else if (!have_runner) missing.push_back(awaiting_runner(runners, cls, platform));
      else missing.push_back(fmt::format("gpu check for {} did not pass", cls));
    }
  }
  v.verified = missing.empty();
  v.reason = missing.empty() ? "" : missing.front();
  for (size_t i = 1; i < missing.size(); ++i) v.reason += "; " + missing[i];
}

}  // namespace kiln::verify::detail
