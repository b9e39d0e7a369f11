// CUDA compute capabilities ("8.6", "sm_86", "sm_90a", "compute_90").
#pragma once
#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

struct ComputeCapability {
  unsigned major = 0;
  unsigned minor = 0;
  // Arch-specific ("a") or family ("f") variants: code built for sm_90a runs
  // only on 9.0 and is never forward compatible, so it must be kept apart.
  char variant = 0;

  // Accepts "8.6", "86", "sm_86", "sm_90a", "compute_90", "100" (10.0).
  static std::optional<ComputeCapability> parse(std::string_view text);
  std::string str() const;       // "8.6"
  std::string sm() const;        // "sm_86"
  std::string compute() const;   // "compute_86"
  unsigned number() const { return major * 10 + minor; }

  friend auto operator<=>(const ComputeCapability&, const ComputeCapability&) = default;
};

// A TORCH_CUDA_ARCH_LIST-style list: "5.0;6.0;9.0+PTX" -> SASS for each,
// PTX for the entries marked +PTX.
struct ArchList {
  std::vector<ComputeCapability> sass;
  std::vector<ComputeCapability> ptx;
  static std::optional<ArchList> parse(std::string_view text);
  std::string str() const;  // back to "5.0;6.0;9.0+PTX"
  bool empty() const { return sass.empty() && ptx.empty(); }
};

// The NVIDIA_REQUIRE_ARCH value the NVIDIA container runtime checks at
// container start (libnvidia-container: alternatives separated by spaces
// are OR-ed, conditions joined by commas AND-ed): SASS sm_XY serves X.Y up
// to the next major, an arch-specific sm_XYa only X.Y, PTX compute_XY any
// GPU from X.Y on. "7.5;9.0+PTX" -> "arch>=7.5,arch<8.0 arch>=9.0,arch<10.0 arch>=9.0".
std::string require_arch(const ArchList& arch);

// How a GPU of capability `gpu` can run code built for `arch`.
enum class Support { native, ptx_jit, unsupported };
const char* to_string(Support s);

// SASS runs on the same major with an equal or higher minor (sm_80 on 8.6;
// a family variant sm_100f likewise), an arch-specific one (sm_90a) only on
// its exact capability; PTX JIT-compiles on any GPU of equal or higher
// capability (compute_90a: 9.0 only; compute_100f: 10.x only). The one rule
// for the plan (arch lists) and the audit (fat binaries).
struct SupportVerdict {
  Support support = Support::unsupported;
  std::optional<ComputeCapability> via;  // the SASS or PTX entry used
};
SupportVerdict support_for(const ArchList& arch, const ComputeCapability& gpu);

}  // namespace kiln
