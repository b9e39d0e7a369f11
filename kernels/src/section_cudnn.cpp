// cudnn: the loaded cuDNN version against the expected one and the headers,
// then 2-D convolution forward (NCHW, FP32, several shapes) on every device,
// checked against a direct double reference; the algorithm cuDNN's heuristics
// chose is reported per shape.

#include <cudnn.h>

#include "checks.h"
#include "cuda_util.h"
#include "sections.h"

namespace kiln::smoke {

namespace {

void cudnn_check(cudnnStatus_t st, const char* call, const char* file, int line) {
  if (st == CUDNN_STATUS_SUCCESS) return;
  throw std::runtime_error(std::string(cudnnGetErrorString(st)) + " (" +
                           std::to_string(static_cast<int>(st)) + ") in " + call + " at " + file +
                           ":" + std::to_string(line));
}
#define KILN_CUDNN(call) cudnn_check((call), #call, __FILE__, __LINE__)

// FP32 with FMA math (TF32 off): the check is then tight, and a TF32 path
// cannot hide an error inside its own rounding.
constexpr double kConvTolerance = 1e-4;

// Shapes chosen to exercise padding, stride, dilation, 1x1 and odd sizes
// while keeping the CPU reference under ~0.1 s.
const std::vector<ConvShape>& shapes() {
  static const std::vector<ConvShape> s = {
      {2, 3, 32, 32, 8, 3, 3, 1, 1, 1, 1},
      {1, 16, 28, 28, 32, 5, 5, 2, 2, 2, 2},
      {4, 8, 17, 23, 16, 1, 1, 0, 0, 1, 1},
      {2, 32, 14, 14, 64, 3, 3, 2, 2, 1, 1, 2, 2},
      {4, 32, 32, 32, 32, 3, 3, 1, 1, 1, 1},
  };
  return s;
}

const char* algo_name(cudnnConvolutionFwdAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "IMPLICIT_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "IMPLICIT_PRECOMP_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "DIRECT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "FFT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "FFT_TILING";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "WINOGRAD";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
    default: return "UNKNOWN";
  }
}

struct ShapeData {
  ConvShape shape;
  std::vector<float> x, w;
  std::vector<double> ref, scale;
};

// cuDNN descriptors of one convolution, destroyed together.
struct ConvDescs {
  cudnnTensorDescriptor_t x{}, y{};
  cudnnFilterDescriptor_t w{};
  cudnnConvolutionDescriptor_t conv{};
  explicit ConvDescs(const ConvShape& sh) {
    KILN_CUDNN(cudnnCreateTensorDescriptor(&x));
    KILN_CUDNN(cudnnCreateTensorDescriptor(&y));
    KILN_CUDNN(cudnnCreateFilterDescriptor(&w));
    KILN_CUDNN(cudnnCreateConvolutionDescriptor(&conv));
    KILN_CUDNN(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, sh.n, sh.c, sh.h, sh.w));
    KILN_CUDNN(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, sh.k, sh.c, sh.r, sh.s));
    KILN_CUDNN(cudnnSetConvolution2dDescriptor(conv, sh.pad_h, sh.pad_w, sh.stride_h, sh.stride_w,
                                               sh.dil_h, sh.dil_w, CUDNN_CROSS_CORRELATION,
                                               CUDNN_DATA_FLOAT));
    KILN_CUDNN(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
    int n, k, oh, ow;
    KILN_CUDNN(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &k, &oh, &ow));
    if (n != sh.n || k != sh.k || oh != sh.out_h() || ow != sh.out_w())
      throw std::runtime_error("cuDNN output shape " + std::to_string(n) + "x" + std::to_string(k) +
                               "x" + std::to_string(oh) + "x" + std::to_string(ow) +
                               " differs from the reference's for " + sh.describe());
    KILN_CUDNN(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, k, oh, ow));
  }
  ~ConvDescs() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  ConvDescs(const ConvDescs&) = delete;
  ConvDescs& operator=(const ConvDescs&) = delete;
};

// The heuristics' first usable choice: what a framework gets without benchmarking.
cudnnConvolutionFwdAlgo_t choose_algo(cudnnHandle_t h, const ConvDescs& d) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  KILN_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y,
                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
  for (int i = 0; i < returned; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) return perf[i].algo;
  throw std::runtime_error("cuDNN heuristics returned no usable forward algorithm");
}

Json run_shape(cudnnHandle_t h, const ShapeData& sd, Section& s, const DeviceInfo& dev) {
  const ConvShape& sh = sd.shape;
  ConvDescs d(sh);
  cudnnConvolutionFwdAlgo_t algo = choose_algo(h, d);
  std::size_t ws_bytes = 0;
  KILN_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, algo, &ws_bytes));

  DeviceBuffer<float> x(sh.x_size()), w(sh.w_size()), y(sh.y_size());
  DeviceBuffer<char> ws(std::max<std::size_t>(ws_bytes, 1));
  KILN_CUDA(cudaMemcpy(x.get(), sd.x.data(), x.bytes(), cudaMemcpyHostToDevice));
  KILN_CUDA(cudaMemcpy(w.get(), sd.w.data(), w.bytes(), cudaMemcpyHostToDevice));
  KILN_CUDA(cudaMemset(y.get(), 0xFF, y.bytes()));  // NaN-fill: untouched output fails
  const float alpha = 1.f, beta = 0.f;
  KILN_CUDNN(cudnnConvolutionForward(h, &alpha, d.x, x.get(), d.w, w.get(), d.conv, algo, ws.get(),
                                     ws_bytes, &beta, d.y, y.get()));
  std::vector<float> got(sh.y_size());
  KILN_CUDA(cudaMemcpy(got.data(), y.get(), y.bytes(), cudaMemcpyDeviceToHost));

  ErrorStats st = compare_results(got, sd.ref, sd.scale, kConvTolerance);
  Json j = Json::object();
  j["shape"] = sh.describe();
  j["algo"] = algo_name(algo);
  j["workspace_bytes"] = static_cast<long long>(ws_bytes);
  j["ok"] = st.ok();
  j["max_norm_err"] = st.max_norm_err;
  j["rel_fro_err"] = st.rel_fro_err;
  if (!st.ok())
    s.fail("device " + dev.label() + ": conv2d " + sh.describe() + " (" + algo_name(algo) +
           ") wrong: " + st.describe());
  return j;
}

void check_versions(const Context& ctx, Section& s) {
  const int loaded = static_cast<int>(cudnnGetVersion());
  s.data["version"] = cudnn_version_string(loaded);
  s.data["header_version"] = cudnn_version_string(CUDNN_VERSION);
  s.data["expected"] = ctx.options.expect_cudnn.empty() ? Json() : Json(ctx.options.expect_cudnn);
  // cuDNN keeps its ABI within a major version only.
  if (loaded / (loaded >= 90000 ? 10000 : 1000) != CUDNN_MAJOR)
    s.fail("loaded cuDNN " + cudnn_version_string(loaded) + " has another major version than the " +
           cudnn_version_string(CUDNN_VERSION) + " headers kiln-smoke was built with");
  const std::string& want = ctx.options.expect_cudnn;
  if (!want.empty() && !version_matches(want, cudnn_version_string(loaded)))
    s.fail(version_mismatch_message("cuDNN", want, cudnn_version_string(loaded)));
}

}  // namespace

void run_cudnn(Context& ctx, Section& s) {
  check_versions(ctx, s);
  s.data["math"] = "fp32, FMA (no TF32)";
  s.data["tolerance"] = kConvTolerance;

  std::vector<ShapeData> data;
  std::uint64_t seed = ctx.seed * 7 + 11;
  for (const auto& sh : shapes()) {
    ShapeData sd{sh};
    sd.x.resize(sh.x_size());
    sd.w.resize(sh.w_size());
    fill_uniform(sd.x, seed++);
    fill_uniform(sd.w, seed++);
    reference_conv2d(sh, sd.x.data(), sd.w.data(), sd.ref, sd.scale);
    data.push_back(std::move(sd));
  }

  Json per = Json::array();
  for (const auto& dev : ctx.devices) {
    Json j = Json::object();
    j["device"] = dev.index;
    try {
      KILN_CUDA(cudaSetDevice(dev.index));
      cudnnHandle_t h;
      KILN_CUDNN(cudnnCreate(&h));
      struct HandleGuard {
        cudnnHandle_t h;
        ~HandleGuard() { cudnnDestroy(h); }
      } guard{h};
      Json conv = Json::array();
      for (const auto& sd : data) conv.push_back(run_shape(h, sd, s, dev));
      j["conv2d"] = conv;
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
