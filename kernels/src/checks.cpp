#include "checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>

namespace kiln::smoke {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::FP16: return "fp16";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

double gemm_tolerance(Precision p) {
  switch (p) {
    case Precision::FP32: return 1e-5;
    case Precision::FP16: return 2e-3;
    case Precision::BF16: return 1.6e-2;
  }
  return 0;
}

static std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

static float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::uint16_t float_to_bf16_bits(float f) {
  std::uint32_t u = bits_of(f);
  if (std::isnan(f)) return static_cast<std::uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even
  return static_cast<std::uint16_t>(u >> 16);
}

float bf16_bits_to_float(std::uint16_t b) { return float_of(std::uint32_t(b) << 16); }

std::uint16_t float_to_half_bits(float f) {
  std::uint32_t u = bits_of(f);
  std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000);
  std::uint32_t abs = u & 0x7FFFFFFF;
  if (abs > 0x7F800000) return sign | 0x7E00;                 // NaN
  if (abs >= 0x477FF000) return sign | 0x7C00;                // overflow to inf
  if (abs < 0x38800000) {                                     // subnormal or zero
    // Scale into the subnormal range with float arithmetic: rounding to
    // nearest even is done by the FPU when adding the magic constant.
    float magic = float_of(0x3F000000);  // 0.5: shifts the value's LSB to 2^-24
    float r = float_of(abs) + magic;
    return sign | static_cast<std::uint16_t>(bits_of(r) - bits_of(magic));
  }
  std::uint32_t mant_odd = (abs >> 13) & 1;
  abs += 0xC8000FFF + mant_odd;  // rebias exponent (-112 << 23) and round
  return sign | static_cast<std::uint16_t>(abs >> 13);
}

float half_bits_to_float(std::uint16_t h) {
  std::uint32_t sign = std::uint32_t(h & 0x8000) << 16;
  std::uint32_t exp = (h >> 10) & 0x1F;
  std::uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return float_of(sign | 0x7F800000 | (mant << 13));
  if (exp == 0) {
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

float round_to(Precision p, float f) {
  switch (p) {
    case Precision::FP32: return f;
    case Precision::FP16: return half_bits_to_float(float_to_half_bits(f));
    case Precision::BF16: return bf16_bits_to_float(float_to_bf16_bits(f));
  }
  return f;
}

void fill_uniform(std::vector<float>& v, std::uint64_t seed) {
  // splitmix64: fast, good enough for test data, and reproducible from the seed.
  std::uint64_t x = seed;
  for (float& f : v) {
    x += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    // 24 random bits -> [-1, 1)
    f = static_cast<float>(static_cast<std::int32_t>(z >> 40) - (1 << 23)) / float(1 << 23);
  }
}

void reference_gemm(int m, int n, int k, const float* a, const float* b,
                    std::vector<double>& c, std::vector<double>& scale) {
  c.assign(std::size_t(m) * n, 0.0);
  scale.assign(std::size_t(m) * n, 0.0);
  // j-p-i order walks A and C down columns: contiguous in column-major.
  for (int j = 0; j < n; ++j) {
    double* cj = &c[std::size_t(j) * m];
    double* sj = &scale[std::size_t(j) * m];
    for (int p = 0; p < k; ++p) {
      double bpj = b[std::size_t(j) * k + p];
      const float* ap = a + std::size_t(p) * m;
      for (int i = 0; i < m; ++i) {
        double prod = double(ap[i]) * bpj;
        cj[i] += prod;
        sj[i] += std::fabs(prod);
      }
    }
  }
}

int ConvShape::out_h() const { return (h + 2 * pad_h - dil_h * (r - 1) - 1) / stride_h + 1; }
int ConvShape::out_w() const { return (w + 2 * pad_w - dil_w * (s - 1) - 1) / stride_w + 1; }

std::string ConvShape::describe() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "x %dx%dx%dx%d w %dx%dx%dx%d pad %d,%d stride %d,%d dil %d,%d",
                n, c, h, w, k, c, r, s, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w);
  return buf;
}

void reference_conv2d(const ConvShape& sh, const float* x, const float* wt,
                      std::vector<double>& y, std::vector<double>& scale) {
  const int oh = sh.out_h(), ow = sh.out_w();
  y.assign(sh.y_size(), 0.0);
  scale.assign(sh.y_size(), 0.0);
  for (int n = 0; n < sh.n; ++n)
    for (int k = 0; k < sh.k; ++k)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          double acc = 0, mag = 0;
          for (int c = 0; c < sh.c; ++c)
            for (int r = 0; r < sh.r; ++r) {
              int iy = oy * sh.stride_h - sh.pad_h + r * sh.dil_h;
              if (iy < 0 || iy >= sh.h) continue;
              for (int s = 0; s < sh.s; ++s) {
                int ix = ox * sh.stride_w - sh.pad_w + s * sh.dil_w;
                if (ix < 0 || ix >= sh.w) continue;
                double xv = x[((std::size_t(n) * sh.c + c) * sh.h + iy) * sh.w + ix];
                double wv = wt[((std::size_t(k) * sh.c + c) * sh.r + r) * sh.s + s];
                acc += xv * wv;
                mag += std::fabs(xv * wv);
              }
            }
          std::size_t o = ((std::size_t(n) * sh.k + k) * oh + oy) * ow + ox;
          y[o] = acc;
          scale[o] = mag;
        }
}

std::string ErrorStats::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%zu element(s) over tolerance %.3g; max normalised error %.3g at index %zu "
                "(got %.7g, reference %.7g); relative Frobenius error %.3g",
                n_bad, tolerance, max_norm_err, worst_index, worst_got, worst_ref, rel_fro_err);
  return buf;
}

ErrorStats compare_results(const std::vector<float>& got, const std::vector<double>& ref,
                           const std::vector<double>& scale, double tolerance) {
  ErrorStats st;
  st.tolerance = tolerance;
  if (got.size() != ref.size() || ref.size() != scale.size()) {
    st.n_bad = std::max(got.size(), ref.size()) + 1;  // a size mismatch is never ok
    st.max_norm_err = std::numeric_limits<double>::infinity();
    return st;
  }
  double diff2 = 0, ref2 = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    double d = std::fabs(double(got[i]) - ref[i]);
    // An all-zero row/column has scale 0: any non-zero result is then wrong.
    double e = d / std::max(scale[i], 1e-30);
    if (std::isnan(e)) e = std::numeric_limits<double>::infinity();
    if (e > tolerance) ++st.n_bad;
    if (e > st.max_norm_err || i == 0) {
      st.max_norm_err = e;
      st.worst_index = i;
      st.worst_got = got[i];
      st.worst_ref = ref[i];
    }
    diff2 += d * d;
    ref2 += ref[i] * ref[i];
  }
  st.rel_fro_err = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  return st;
}

std::string cuda_version_string(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

static std::string three_part(int major, int minor, int patch) {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

std::string cudnn_version_string(int v) {
  if (v >= 90000) return three_part(v / 10000, (v % 10000) / 100, v % 100);
  return three_part(v / 1000, (v % 1000) / 100, v % 100);
}

std::string nccl_version_string(int v) {
  if (v >= 20900) return three_part(v / 10000, (v % 10000) / 100, v % 100);
  return three_part(v / 1000, (v % 1000) / 100, v % 100);
}

std::optional<std::vector<int>> parse_version(const std::string& s) {
  std::vector<int> parts;
  std::size_t i = 0;
  while (i <= s.size()) {
    std::size_t j = s.find('.', i);
    if (j == std::string::npos) j = s.size();
    std::string piece = s.substr(i, j - i);
    if (piece.empty() || piece.size() > 6 ||
        !std::all_of(piece.begin(), piece.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    parts.push_back(std::stoi(piece));
    i = j + 1;
  }
  return parts;
}

bool version_matches(const std::string& expected, const std::string& found) {
  auto e = parse_version(expected), f = parse_version(found);
  if (!e || !f || e->size() > f->size()) return false;
  return std::equal(e->begin(), e->end(), f->begin());
}

std::string version_mismatch_message(const std::string& what, const std::string& expected,
                                     const std::string& found) {
  return what + " version mismatch: expected " + expected + ", loaded " + found;
}

bool driver_older_than_runtime(int driver_version, int runtime_version) {
  return driver_version > 0 && driver_version < runtime_version;
}

std::vector<ArchCode> parse_arch_list(const std::string& s) {
  std::vector<ArchCode> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    ArchCode a;
    std::size_t i = 0;
    while (i < item.size() && item[i] >= '0' && item[i] <= '9') a.arch = a.arch * 10 + (item[i++] - '0');
    if (i < item.size()) a.suffix = item[i];
    if (a.arch > 0) out.push_back(a);
  }
  return out;
}

std::string expected_code_source(int cc_major, int cc_minor, const std::vector<ArchCode>& sass,
                                 const std::vector<ArchCode>& ptx) {
  const int dev = cc_major * 10 + cc_minor;
  for (const auto& a : sass) {
    bool same_major = a.arch / 10 == cc_major;
    if (a.suffix == 'a' ? a.arch == dev : same_major && a.arch % 10 <= cc_minor) return "sass";
  }
  for (const auto& p : ptx)
    if (p.suffix == 0 && p.arch <= dev) return "ptx-jit";
  return "none";
}

}  // namespace kiln::smoke
