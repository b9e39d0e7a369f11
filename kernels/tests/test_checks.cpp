// Unit tests of the host-side checks: references, comparison, conversions, versions.
#include <catch2/catch.hpp>

#include <cmath>

#include "checks.h"

using namespace kiln::smoke;

namespace {

// A GPU-like result: the reference rounded to the output precision.
std::vector<float> rounded(const std::vector<double>& ref, Precision p) {
  std::vector<float> out(ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) out[i] = round_to(p, static_cast<float>(ref[i]));
  return out;
}

struct Gemm {
  int m = 64, n = 48, k = 40;
  std::vector<float> a, b;
  std::vector<double> ref, scale;
  explicit Gemm(Precision p, std::uint64_t seed = 7) {
    a.resize(std::size_t(m) * k);
    b.resize(std::size_t(k) * n);
    fill_uniform(a, seed);
    fill_uniform(b, seed + 1);
    for (float& x : a) x = round_to(p, x);
    for (float& x : b) x = round_to(p, x);
    reference_gemm(m, n, k, a.data(), b.data(), ref, scale);
  }
};

}  // namespace

TEST_CASE("reference_gemm is column-major A*B") {
  // A = [1 2; 3 4] (column-major {1,3,2,4}), B = [5 6; 7 8] ({5,7,6,8})
  std::vector<float> a{1, 3, 2, 4}, b{5, 7, 6, 8};
  std::vector<double> c, s;
  reference_gemm(2, 2, 2, a.data(), b.data(), c, s);
  CHECK(c == std::vector<double>{19, 43, 22, 50});
  CHECK(s == std::vector<double>{19, 43, 22, 50});
}

TEST_CASE("a correct GEMM result passes in every precision") {
  for (Precision p : {Precision::FP32, Precision::FP16, Precision::BF16}) {
    Gemm g(p);
    ErrorStats st = compare_results(rounded(g.ref, p), g.ref, g.scale, gemm_tolerance(p));
    INFO(precision_name(p) << ": " << st.describe());
    CHECK(st.ok());
  }
}

TEST_CASE("a planted wrong GEMM result fails the check") {
  for (Precision p : {Precision::FP32, Precision::FP16, Precision::BF16}) {
    Gemm g(p);
    auto got = rounded(g.ref, p);
    SECTION(std::string("one element off by 5% of its magnitude, ") + precision_name(p)) {
      got[123] += static_cast<float>(0.05 * g.scale[123]);
      ErrorStats st = compare_results(got, g.ref, g.scale, gemm_tolerance(p));
      CHECK_FALSE(st.ok());
      CHECK(st.n_bad == 1);
      CHECK(st.worst_index == 123);
    }
    SECTION(std::string("transposed operands, ") + precision_name(p)) {
      // The column-major result read back as row-major: a classic layout bug.
      std::vector<float> t(g.ref.size());
      for (int i = 0; i < g.m; ++i)
        for (int j = 0; j < g.n; ++j)
          t[std::size_t(j) * g.m + i] = static_cast<float>(g.ref[std::size_t(i) * g.n + j]);
      CHECK_FALSE(compare_results(t, g.ref, g.scale, gemm_tolerance(p)).ok());
    }
    SECTION(std::string("NaN output, ") + precision_name(p)) {
      got[0] = std::nanf("");
      CHECK_FALSE(compare_results(got, g.ref, g.scale, gemm_tolerance(p)).ok());
    }
    SECTION(std::string("all zeros (kernel never ran), ") + precision_name(p)) {
      std::fill(got.begin(), got.end(), 0.f);
      CHECK_FALSE(compare_results(got, g.ref, g.scale, gemm_tolerance(p)).ok());
    }
  }
}

TEST_CASE("FP16 accuracy is not enough for the FP32 bound") {
  // A result only good to FP16 must not pass as FP32.
  Gemm g(Precision::FP32);
  auto got = rounded(g.ref, Precision::FP16);
  CHECK_FALSE(compare_results(got, g.ref, g.scale, gemm_tolerance(Precision::FP32)).ok());
}

TEST_CASE("size mismatch never passes") {
  std::vector<float> got(3);
  std::vector<double> ref(4), scale(4, 1.0);
  CHECK_FALSE(compare_results(got, ref, scale, 1.0).ok());
}

TEST_CASE("reference conv2d matches a hand-computed case") {
  // 1x1x3x3 input, one 2x2 filter of ones, no padding: sums of 2x2 windows.
  ConvShape sh{1, 1, 3, 3, 1, 2, 2, 0, 0, 1, 1};
  std::vector<float> x{1, 2, 3, 4, 5, 6, 7, 8, 9}, w{1, 1, 1, 1};
  std::vector<double> y, s;
  reference_conv2d(sh, x.data(), w.data(), y, s);
  REQUIRE(sh.out_h() == 2);
  REQUIRE(sh.out_w() == 2);
  CHECK(y == std::vector<double>{12, 16, 24, 28});
}

TEST_CASE("conv2d output sizes with padding, stride and dilation") {
  ConvShape a{1, 16, 28, 28, 32, 5, 5, 2, 2, 2, 2};
  CHECK(a.out_h() == 14);
  ConvShape b{2, 32, 14, 14, 64, 3, 3, 2, 2, 1, 1, 2, 2};
  CHECK(b.out_h() == 14);
  CHECK(b.out_w() == 14);
}

TEST_CASE("a planted wrong conv result fails") {
  ConvShape sh{2, 3, 9, 7, 4, 3, 3, 1, 1, 2, 1};
  std::vector<float> x(sh.x_size()), w(sh.w_size());
  fill_uniform(x, 1);
  fill_uniform(w, 2);
  std::vector<double> y, s;
  reference_conv2d(sh, x.data(), w.data(), y, s);
  std::vector<float> got(y.begin(), y.end());
  CHECK(compare_results(got, y, s, 1e-4).ok());
  got[got.size() / 2] *= 1.01f;
  got[got.size() / 2] += 0.01f;
  CHECK_FALSE(compare_results(got, y, s, 1e-4).ok());
}

TEST_CASE("half and bfloat16 conversions round to nearest even") {
  CHECK(float_to_half_bits(1.0f) == 0x3C00);
  CHECK(float_to_half_bits(-2.0f) == 0xC000);
  CHECK(float_to_half_bits(65504.0f) == 0x7BFF);
  CHECK(float_to_half_bits(1e6f) == 0x7C00);
  CHECK(float_to_half_bits(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(half_bits_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_bits_to_float(0x3555) == Approx(0.33325195f));
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
  CHECK(float_to_half_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);
  CHECK(float_to_bf16_bits(1.0f) == 0x3F80);
  CHECK(bf16_bits_to_float(0x4049) == Approx(3.140625f));
  CHECK(float_to_bf16_bits(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);  // tie to even
  CHECK(std::isnan(half_bits_to_float(float_to_half_bits(std::nanf("")))));
  for (float f : {0.1f, -0.7f, 3.3f, 1e-3f})
    CHECK(round_to(Precision::FP16, f) == Approx(f).epsilon(1e-3));
}

TEST_CASE("fill_uniform is deterministic and in [-1, 1)") {
  std::vector<float> a(1000), b(1000), c(1000);
  fill_uniform(a, 42);
  fill_uniform(b, 42);
  fill_uniform(c, 43);
  CHECK(a == b);
  CHECK(a != c);
  for (float x : a) {
    CHECK(x >= -1.0f);
    CHECK(x < 1.0f);
  }
}

TEST_CASE("version strings from the libraries' integer codes") {
  CHECK(cuda_version_string(13000) == "13.0");
  CHECK(cuda_version_string(12040) == "12.4");
  CHECK(cudnn_version_string(91900) == "9.19.0");
  CHECK(cudnn_version_string(8907) == "8.9.7");
  CHECK(nccl_version_string(22809) == "2.28.9");
  CHECK(nccl_version_string(2804) == "2.8.4");
}

TEST_CASE("expected versions match as a prefix of components") {
  CHECK(version_matches("13.0", "13.0"));
  CHECK(version_matches("9.19", "9.19.0"));
  CHECK(version_matches("9.19.0", "9.19.0"));
  CHECK_FALSE(version_matches("9.19.1", "9.19.0"));
  CHECK_FALSE(version_matches("9.1", "9.19.0"));  // components, not characters
  CHECK_FALSE(version_matches("12.4", "13.0"));
  CHECK_FALSE(version_matches("9.19.0.1", "9.19.0"));
  CHECK_FALSE(version_matches("x", "9.19.0"));
  CHECK(version_mismatch_message("cuDNN", "9.1.0", "9.19.0") ==
        "cuDNN version mismatch: expected 9.1.0, loaded 9.19.0");
  CHECK_FALSE(parse_version("1..2"));
  CHECK_FALSE(parse_version(""));
  CHECK(parse_version("2.28.9") == std::vector<int>{2, 28, 9});
}

TEST_CASE("driver older than runtime") {
  CHECK(driver_older_than_runtime(12040, 13000));
  CHECK_FALSE(driver_older_than_runtime(13000, 13000));
  CHECK_FALSE(driver_older_than_runtime(13010, 13000));
  CHECK_FALSE(driver_older_than_runtime(0, 13000));  // no driver: "no GPU", not this
}

TEST_CASE("which code the driver will run") {
  auto l = [](const char* s) { return parse_arch_list(s); };
  CHECK(expected_code_source(9, 0, l("90"), l("90")) == "sass");
  CHECK(expected_code_source(9, 0, l("75"), l("")) == "none");     // sm_75 SASS only on H100
  CHECK(expected_code_source(9, 0, l(""), l("75")) == "ptx-jit");  // compute_75 PTX only
  CHECK(expected_code_source(8, 6, l("80"), l("")) == "sass");     // 8.0 SASS runs on 8.6
  CHECK(expected_code_source(8, 0, l("86"), l("")) == "none");     // but not the reverse
  CHECK(expected_code_source(9, 0, l("90a"), l("")) == "sass");
  CHECK(expected_code_source(10, 0, l("90a"), l("90")) == "ptx-jit");
  CHECK(expected_code_source(7, 5, l("80"), l("80")) == "none");   // PTX newer than the GPU
  auto v = l("75,90a,100f");
  REQUIRE(v.size() == 3);
  CHECK(v[1].arch == 90);
  CHECK(v[1].suffix == 'a');
  CHECK(v[2].arch == 100);
}
