// Host-side numerical and version checks of the smoke suite.
//
// Everything here is plain C++ with no CUDA dependency, so the logic that
// decides pass/fail can be unit-tested on a machine without a GPU (or even
// without nvcc): the GPU sections only produce numbers and call into here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::smoke {

// ---- precisions and rounding ------------------------------------------------

enum class Precision { FP32, FP16, BF16 };
const char* precision_name(Precision p);

// Error bound for a dot-product result in this output precision, relative to
// sum_k |a_ik * b_kj| (see compare_results). The inputs are rounded to the
// precision before the reference is computed, so what remains is the
// accumulation error (FP32 accumulate) and the rounding of the stored output:
// 2^-11 for FP16, 2^-8 for BF16. The bounds allow ~4x that; a wrong kernel is
// off by orders of magnitude more.
double gemm_tolerance(Precision p);

// IEEE binary16 and bfloat16 conversions (round to nearest even), host-only,
// so the host code needs no cuda_fp16.h.
std::uint16_t float_to_half_bits(float f);
float half_bits_to_float(std::uint16_t h);
std::uint16_t float_to_bf16_bits(float f);
float bf16_bits_to_float(std::uint16_t b);
// Value after a round trip through the precision (identity for FP32).
float round_to(Precision p, float f);

// Fast deterministic uniform values in [-1, 1); a fresh seed per run gives
// fresh data (the seed is reported so a failure can be replayed).
void fill_uniform(std::vector<float>& v, std::uint64_t seed);

// ---- references --------------------------------------------------------------

// C = A * B in column-major order (cuBLAS's), A m x k, B k x n, computed in
// double. `scale` receives sum_k |A_ik * B_kj| per element: the natural
// magnitude against which floating-point error of a dot product is measured.
void reference_gemm(int m, int n, int k, const float* a, const float* b,
                    std::vector<double>& c, std::vector<double>& scale);

struct ConvShape {
  int n, c, h, w;      // input NCHW
  int k, r, s;         // filters: k output channels, r x s window
  int pad_h, pad_w;
  int stride_h, stride_w;
  int dil_h = 1, dil_w = 1;
  int out_h() const;
  int out_w() const;
  std::size_t x_size() const { return std::size_t(n) * c * h * w; }
  std::size_t w_size() const { return std::size_t(k) * c * r * s; }
  std::size_t y_size() const { return std::size_t(n) * k * out_h() * out_w(); }
  std::string describe() const;
};

// Direct 2-D cross-correlation (what cuDNN calls convolution), NCHW / KCRS,
// zero padding, in double; `scale` as for reference_gemm.
void reference_conv2d(const ConvShape& sh, const float* x, const float* w,
                      std::vector<double>& y, std::vector<double>& scale);

// ---- comparison --------------------------------------------------------------

struct ErrorStats {
  double max_norm_err = 0;   // max_i |got_i - ref_i| / max(scale_i, tiny)
  double rel_fro_err = 0;    // ||got - ref||_2 / ||ref||_2
  std::size_t worst_index = 0;
  double worst_got = 0, worst_ref = 0;
  std::size_t n_bad = 0;     // elements over tolerance (NaN counts as bad)
  double tolerance = 0;
  bool ok() const { return n_bad == 0; }
  std::string describe() const;  // one line for error messages
};

ErrorStats compare_results(const std::vector<float>& got,
                           const std::vector<double>& ref,
                           const std::vector<double>& scale, double tolerance);

// ---- versions ----------------------------------------------------------------

// "13.0" from cudaRuntimeGetVersion's 13000.
std::string cuda_version_string(int v);
// "9.19.0" from cudnnGetVersion (9.x: M*10000+m*100+p; 8.x: M*1000+m*100+p).
std::string cudnn_version_string(int v);
// "2.28.9" from ncclGetVersion (>= 2.9: M*10000+m*100+p; older: M*1000+m*100+p).
std::string nccl_version_string(int v);

// Dotted numeric version; nullopt when not of the form N(.N)*.
std::optional<std::vector<int>> parse_version(const std::string& s);

// An expected version matches when each component it names equals the found
// one: "9.19" matches 9.19.0 and 9.19.1, "9.19.0" matches only 9.19.0.
bool version_matches(const std::string& expected, const std::string& found);

// Both versions named, for the report: "expected cuDNN 9.19.1, loaded 9.19.0".
std::string version_mismatch_message(const std::string& what,
                                     const std::string& expected,
                                     const std::string& found);

// A driver older than the runtime cannot run it (no forward-compat package
// assumed); driver 0 means no driver at all, which is "no GPU", not this.
bool driver_older_than_runtime(int driver_version, int runtime_version);

// ---- architectures -----------------------------------------------------------

// One entry of the embedded code list: "90" (SASS sm_90 or PTX compute_90),
// "90a" arch-specific.
struct ArchCode {
  int arch = 0;        // 75, 90, 100 ...
  char suffix = 0;     // 0, 'a' or 'f'
};
// Parses "75,90a" (the lists CMake derives from CMAKE_CUDA_ARCHITECTURES).
std::vector<ArchCode> parse_arch_list(const std::string& s);

// How the driver will obtain code for a device of compute capability
// major.minor from the embedded SASS and PTX lists: "sass" when a compatible
// cubin exists (same major, minor <= device's; 'a' variants only on the exact
// arch), else "ptx-jit" when some PTX is not newer than the device, else
// "none" (the "no kernel image is available" case).
std::string expected_code_source(int cc_major, int cc_minor,
                                 const std::vector<ArchCode>& sass,
                                 const std::vector<ArchCode>& ptx);

}  // namespace kiln::smoke
