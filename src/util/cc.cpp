#include "util/cc.h"

#include <algorithm>
#include <charconv>

#include "util/text.h"

namespace kiln {

namespace {

std::optional<unsigned> to_uint(std::string_view s) {
  unsigned v = 0;
  if (s.empty() || s.size() > 4) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<ComputeCapability> ComputeCapability::parse(std::string_view text) {
  ComputeCapability cc;
  if (text.starts_with("sm_")) text.remove_prefix(3);
  else if (text.starts_with("compute_")) text.remove_prefix(8);
  if (!text.empty() && (text.back() == 'a' || text.back() == 'f')) {
    cc.variant = text.back();
    text.remove_suffix(1);
  }
  size_t dot = text.find('.');
  if (dot != std::string_view::npos) {
    auto major = to_uint(text.substr(0, dot));
    auto minor = to_uint(text.substr(dot + 1));
    if (!major || !minor || *minor > 9) return std::nullopt;
    cc.major = *major;
    cc.minor = *minor;
  } else {
    auto n = to_uint(text);
    if (!n || *n < 10) return std::nullopt;
    cc.major = *n / 10;
    cc.minor = *n % 10;
  }
  if (cc.major == 0 || cc.major > 20) return std::nullopt;
  return cc;
}

std::string ComputeCapability::str() const {
  return std::to_string(major) + "." + std::to_string(minor) + (variant ? std::string(1, variant) : "");
}
std::string ComputeCapability::sm() const {
  return "sm_" + std::to_string(number()) + (variant ? std::string(1, variant) : "");
}
std::string ComputeCapability::compute() const {
  return "compute_" + std::to_string(number()) + (variant ? std::string(1, variant) : "");
}

std::optional<ArchList> ArchList::parse(std::string_view text) {
  ArchList list;
  for (std::string_view item : split(text, ';')) {
    item = trim(item);
    if (item.empty()) continue;
    bool ptx = false;
    if (item.ends_with("+PTX")) {
      ptx = true;
      item.remove_suffix(4);
    }
    auto cc = ComputeCapability::parse(item);
    if (!cc) return std::nullopt;
    list.sass.push_back(*cc);
    if (ptx) list.ptx.push_back(*cc);
  }
  if (list.empty()) return std::nullopt;
  return list;
}

std::string ArchList::str() const {
  std::string out;
  for (const auto& cc : sass) {
    if (!out.empty()) out += ';';
    out += cc.str();
    if (std::find(ptx.begin(), ptx.end(), cc) != ptx.end()) out += "+PTX";
  }
  for (const auto& cc : ptx) {  // PTX-only entries (no matching SASS)
    if (std::find(sass.begin(), sass.end(), cc) != sass.end()) continue;
    if (!out.empty()) out += ';';
    out += "compute_" + std::to_string(cc.number());
  }
  return out;
}

std::string require_arch(const ArchList& arch) {
  std::vector<std::string> alternatives;
  auto add = [&](std::string a) {
    if (std::find(alternatives.begin(), alternatives.end(), a) == alternatives.end()) alternatives.push_back(std::move(a));
  };
  for (const auto& cc : arch.sass) {
    std::string at = std::to_string(cc.major) + "." + std::to_string(cc.minor);
    if (cc.variant == 'a') add("arch=" + at);
    else add("arch>=" + at + ",arch<" + std::to_string(cc.major + 1) + ".0");
  }
  for (const auto& cc : arch.ptx)
    if (!cc.variant) add("arch>=" + std::to_string(cc.major) + "." + std::to_string(cc.minor));
  std::string out;
  for (const auto& a : alternatives) out += (out.empty() ? "" : " ") + a;
  return out;
}

const char* to_string(Support s) {
  switch (s) {
    case Support::native: return "native";
    case Support::ptx_jit: return "ptx-jit";
    case Support::unsupported: return "unsupported";
  }
  return "unsupported";
}

namespace {

// SASS: an arch-specific cubin ("a") runs only on its exact CC; a portable or
// family ("f") one on the same major at an equal or higher minor.
bool sass_runs_on(const ComputeCapability& code, const ComputeCapability& gpu) {
  if (code.major != gpu.major) return false;
  return code.variant == 'a' ? code.minor == gpu.minor : code.minor <= gpu.minor;
}

// PTX: "a" JIT-compiles only for its exact CC, "f" within its major, plain
// PTX for any GPU of an equal or higher capability.
bool ptx_jits_to(const ComputeCapability& code, const ComputeCapability& gpu) {
  if (code.variant == 'a') return code.major == gpu.major && code.minor == gpu.minor;
  if (code.variant == 'f') return code.major == gpu.major && code.minor <= gpu.minor;
  return code.number() <= gpu.number();
}

// The closest entry to the GPU (highest number); a portable one wins a tie,
// as it is what the driver would also pick on a newer GPU.
template <class Ok>
std::optional<ComputeCapability> closest(const std::vector<ComputeCapability>& list, Ok ok) {
  std::optional<ComputeCapability> pick;
  for (const auto& c : list)
    if (ok(c) && (!pick || c.number() > pick->number() || (c.number() == pick->number() && c.variant == 0)))
      pick = c;
  return pick;
}

}  // namespace

SupportVerdict support_for(const ArchList& arch, const ComputeCapability& gpu) {
  const ComputeCapability dev{gpu.major, gpu.minor, 0};
  if (auto s = closest(arch.sass, [&](const auto& c) { return sass_runs_on(c, dev); })) return {Support::native, s};
  if (auto p = closest(arch.ptx, [&](const auto& c) { return ptx_jits_to(c, dev); })) return {Support::ptx_jit, p};
  return {};
}

}  // namespace kiln
