// cublas: FP32, FP16 and BF16 GEMM on every device, checked against a double
// reference on fresh random data, then timed at a size that fills the GPU.

#include <cublas_v2.h>

#include <cstring>

#include "checks.h"
#include "cuda_util.h"
#include "sections.h"

namespace kiln::smoke {

namespace {

void cublas_check(cublasStatus_t st, const char* call, const char* file, int line) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  throw std::runtime_error(std::string(cublasGetStatusName(st)) + ": " + cublasGetStatusString(st) +
                           " in " + call + " at " + file + ":" + std::to_string(line));
}
#define KILN_CUBLAS(call) cublas_check((call), #call, __FILE__, __LINE__)

// Check shape: not square and not all equal, so a transposed or mis-strided
// result cannot pass by symmetry.
constexpr int kM = 512, kN = 384, kK = 448;
constexpr int kWarmup = 3, kIters = 10;
constexpr Precision kPrecisions[] = {Precision::FP32, Precision::FP16, Precision::BF16};

cudaDataType data_type(Precision p) {
  switch (p) {
    case Precision::FP16: return CUDA_R_16F;
    case Precision::BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

std::size_t elem_size(Precision p) { return p == Precision::FP32 ? 4 : 2; }

// Host floats -> the device's storage format.
void upload(Precision p, const std::vector<float>& host, void* dev) {
  if (p == Precision::FP32) {
    KILN_CUDA(cudaMemcpy(dev, host.data(), host.size() * 4, cudaMemcpyHostToDevice));
    return;
  }
  std::vector<std::uint16_t> bits(host.size());
  for (std::size_t i = 0; i < host.size(); ++i)
    bits[i] = p == Precision::FP16 ? float_to_half_bits(host[i]) : float_to_bf16_bits(host[i]);
  KILN_CUDA(cudaMemcpy(dev, bits.data(), bits.size() * 2, cudaMemcpyHostToDevice));
}

std::vector<float> download(Precision p, const void* dev, std::size_t count) {
  std::vector<float> out(count);
  if (p == Precision::FP32) {
    KILN_CUDA(cudaMemcpy(out.data(), dev, count * 4, cudaMemcpyDeviceToHost));
    return out;
  }
  std::vector<std::uint16_t> bits(count);
  KILN_CUDA(cudaMemcpy(bits.data(), dev, count * 2, cudaMemcpyDeviceToHost));
  for (std::size_t i = 0; i < count; ++i)
    out[i] = p == Precision::FP16 ? half_bits_to_float(bits[i]) : bf16_bits_to_float(bits[i]);
  return out;
}

// C = A * B, column-major, FP32 accumulation for every precision (TF32 is not
// enabled: CUBLAS_COMPUTE_32F keeps FP32 GEMM exact to FP32).
void gemm(cublasHandle_t h, Precision p, int m, int n, int k, const void* a, const void* b, void* c) {
  const float alpha = 1.f, beta = 0.f;
  const cudaDataType t = data_type(p);
  KILN_CUBLAS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, a, t, m, b, t, k, &beta,
                           c, t, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// Inputs rounded to the precision and the double reference of their product:
// computed once per run and shared by all devices.
struct CheckData {
  std::vector<float> a, b;
  std::vector<double> ref, scale;
};

CheckData make_check_data(Precision p, std::uint64_t seed) {
  CheckData d;
  d.a.resize(std::size_t(kM) * kK);
  d.b.resize(std::size_t(kK) * kN);
  fill_uniform(d.a, seed);
  fill_uniform(d.b, seed ^ 0x5bd1e995ull);
  for (float& x : d.a) x = round_to(p, x);
  for (float& x : d.b) x = round_to(p, x);
  reference_gemm(kM, kN, kK, d.a.data(), d.b.data(), d.ref, d.scale);
  return d;
}

Json check_precision(cublasHandle_t h, Precision p, const CheckData& d, Section& s,
                     const DeviceInfo& dev) {
  DeviceBuffer<char> a(d.a.size() * elem_size(p)), b(d.b.size() * elem_size(p)),
      c(std::size_t(kM) * kN * elem_size(p));
  upload(p, d.a, a.get());
  upload(p, d.b, b.get());
  KILN_CUDA(cudaMemset(c.get(), 0xFF, c.bytes()));  // NaN-fill: an untouched C fails
  gemm(h, p, kM, kN, kK, a.get(), b.get(), c.get());
  KILN_CUDA(cudaDeviceSynchronize());
  ErrorStats st = compare_results(download(p, c.get(), std::size_t(kM) * kN), d.ref, d.scale,
                                  gemm_tolerance(p));
  Json j = Json::object();
  j["ok"] = st.ok();
  j["max_norm_err"] = st.max_norm_err;
  j["rel_fro_err"] = st.rel_fro_err;
  j["tolerance"] = st.tolerance;
  if (!st.ok())
    s.fail("device " + dev.label() + ": " + precision_name(p) + " GEMM " + std::to_string(kM) +
           "x" + std::to_string(kN) + "x" + std::to_string(kK) + " wrong: " + st.describe());
  return j;
}

// Random operands for the timed GEMMs, generated once per run.
struct PerfData {
  int n = 0;
  std::vector<float> a, b;
};

double time_gemm(cublasHandle_t h, Precision p, const PerfData& pd) {
  const std::size_t count = std::size_t(pd.n) * pd.n;
  DeviceBuffer<char> a(count * elem_size(p)), b(count * elem_size(p)), c(count * elem_size(p));
  upload(p, pd.a, a.get());
  upload(p, pd.b, b.get());
  for (int i = 0; i < kWarmup; ++i) gemm(h, p, pd.n, pd.n, pd.n, a.get(), b.get(), c.get());
  EventTimer t;
  t.start();
  for (int i = 0; i < kIters; ++i) gemm(h, p, pd.n, pd.n, pd.n, a.get(), b.get(), c.get());
  double sec = t.stop();
  return 2.0 * pd.n * double(pd.n) * pd.n * kIters / sec / 1e12;
}

int perf_size(const Context& ctx) {
  if (ctx.options.gemm_size) return ctx.options.gemm_size;
  std::size_t smallest = ~std::size_t(0);
  for (const auto& d : ctx.devices) smallest = std::min(smallest, d.memory_bytes);
  // 8192^3 keeps a Hopper busy for ~1.4 ms per BF16 GEMM; FP32 needs 768 MiB.
  return smallest >= (std::size_t(4) << 30) ? 8192 : 4096;
}

}  // namespace

void run_cublas(Context& ctx, Section& s) {
  int maj = 0, min = 0, pat = 0;
  cublasGetProperty(MAJOR_VERSION, &maj);
  cublasGetProperty(MINOR_VERSION, &min);
  cublasGetProperty(PATCH_LEVEL, &pat);
  s.data["version"] = std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(pat);
  s.data["check_shape"] = std::to_string(kM) + "x" + std::to_string(kN) + "x" + std::to_string(kK);

  std::vector<CheckData> checks;
  for (Precision p : kPrecisions) checks.push_back(make_check_data(p, ctx.seed + int(p)));
  PerfData pd;
  pd.n = perf_size(ctx);
  pd.a.resize(std::size_t(pd.n) * pd.n);
  pd.b.resize(pd.a.size());
  fill_uniform(pd.a, ctx.seed * 3 + 1);
  fill_uniform(pd.b, ctx.seed * 5 + 2);
  s.data["perf_size"] = pd.n;
  s.data["perf_iterations"] = kIters;

  Json per = Json::array();
  for (const auto& dev : ctx.devices) {
    Json j = Json::object();
    j["device"] = dev.index;
    try {
      KILN_CUDA(cudaSetDevice(dev.index));
      cublasHandle_t h;
      KILN_CUBLAS(cublasCreate(&h));
      struct HandleGuard {
        cublasHandle_t h;
        ~HandleGuard() { cublasDestroy(h); }
      } guard{h};
      for (std::size_t i = 0; i < std::size(kPrecisions); ++i) {
        Precision p = kPrecisions[i];
        Json r = check_precision(h, p, checks[i], s, dev);
        r["tflops"] = time_gemm(h, p, pd);
        j[precision_name(p)] = r;
      }
    } catch (const std::exception& e) {
      j["error"] = e.what();
      s.fail("device " + dev.label() + ": " + e.what());
    }
    per.push_back(std::move(j));
  }
  s.data["devices"] = per;
  s.pass_unless_failed();
}

}  // namespace kiln::smoke
