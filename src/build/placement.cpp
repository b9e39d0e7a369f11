#include "build/placement.h"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

namespace kiln::build::detail {

std::string oci_platform(std::string_view p) {
  if (p == "x86_64" || p == "amd64") return "linux/amd64";
  if (p == "aarch64" || p == "arm64") return "linux/arm64";
  return std::string(p);
}

std::string engine_platform(std::string_view os, std::string_view arch) {
  std::string a = oci_platform(arch);
  if (auto slash = a.find('/'); slash != std::string::npos) a = a.substr(slash + 1);
  return fmt::format("{}/{}", os.empty() ? "linux" : os, a);
}

Need merge(Need a, const Need& b) {
  for (const auto& l : b.labels)
    if (std::find(a.labels.begin(), a.labels.end(), l) == a.labels.end()) a.labels.push_back(l);
  if (a.platform.empty()) a.platform = b.platform;
  a.secrets = a.secrets || b.secrets;
  a.run_mounts = a.run_mounts || b.run_mounts;
  return a;
}

std::string describe(const Need& n) {
  std::string out = n.platform;
  if (!n.labels.empty()) out += fmt::format(" with label{} {}", n.labels.size() > 1 ? "s" : "", fmt::join(n.labels, ", "));
  if (n.secrets) out += ", backend buildx (build secrets)";
  else if (n.run_mounts) out += ", backend buildx or Podman (RUN --mount)";
  return out;
}

std::string why_not(const Slot& e, const Need& n) {
  if (e.down) return "down: " + e.down_reason;
  if (!n.platform.empty() && std::find(e.platforms.begin(), e.platforms.end(), n.platform) == e.platforms.end())
    return fmt::format("platform {}", e.platforms.empty() ? "unknown" : fmt::format("{}", fmt::join(e.platforms, ", ")));
  for (const auto& l : n.labels)
    if (std::find(e.labels.begin(), e.labels.end(), l) == e.labels.end()) return "no label " + l;
  if (n.secrets && !e.buildx) return "backend engine (cannot pass build secrets)";
  if (n.run_mounts && !e.buildx && !e.podman) return "Docker's classic builder (reads no RUN --mount)";
  return "";
}

bool matches(const Slot& e, const Need& n) { return why_not(e, n).empty(); }

std::string no_engine_message(const std::vector<Slot>& engines, const Need& n) {
  std::vector<std::string> parts;
  for (const auto& e : engines) parts.push_back(fmt::format("engine '{}': {}", e.name, why_not(e, n)));
  return fmt::format("no engine can build it (needs {}): {}", describe(n), fmt::join(parts, "; "));
}

namespace {

std::vector<int> matching(const std::vector<Slot>& engines, const Need& n) {
  std::vector<int> out;
  for (size_t e = 0; e < engines.size(); ++e)
    if (matches(engines[e], n)) out.push_back(static_cast<int>(e));
  return out;
}

}  // namespace

Choice choose_root(const std::vector<Slot>& engines, const Need& own, const Need& subtree, int sticky) {
  std::vector<int> candidates = matching(engines, subtree);
  if (candidates.empty()) candidates = matching(engines, own);
  if (candidates.empty()) return {Choice::none, -1, no_engine_message(engines, own)};
  if (std::find(candidates.begin(), candidates.end(), sticky) != candidates.end())
    return engines[sticky].free() ? Choice{Choice::start, sticky, ""} : Choice{Choice::wait, -1, ""};
  int best = -1;
  for (int e : candidates) {
    if (!engines[e].free()) continue;
    auto key = [&](int i) { return std::tuple(engines[i].running, engines[i].started, i); };
    if (best < 0 || key(e) < key(best)) best = e;
  }
  return best < 0 ? Choice{Choice::wait, -1, ""} : Choice{Choice::start, best, ""};
}

Choice choose_child(const std::vector<Slot>& engines, const Need& own, int parent_engine) {
  const Slot& e = engines.at(parent_engine);
  if (e.down) return {Choice::rebuild_parent, -1, ""};
  if (std::string why = why_not(e, own); !why.empty())
    return {Choice::none, -1,
            fmt::format("it builds FROM its parent's image, which is on engine '{}' ({}), and no engine can build both "
                        "(it needs {}): give one engine the labels of both",
                        e.name, why, describe(own))};
  return e.free() ? Choice{Choice::start, parent_engine, ""} : Choice{Choice::wait, -1, ""};
}

}  // namespace kiln::build::detail
