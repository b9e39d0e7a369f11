// kiln-smoke-torch: proves LibTorch in an image sees CUDA and cuDNN and
// computes correctly on the GPU. Same JSON schema and exit codes as
// kiln-smoke (kernels/README.md); sections: env, matmul, conv2d, autocast.

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "checks.h"
#include "options.h"
#include "report.h"

#ifndef KILN_SMOKE_VERSION
#define KILN_SMOKE_VERSION "0.0.0"
#endif

namespace kiln::smoke {
namespace {

const std::vector<std::string> kSections{"env", "matmul", "conv2d", "autocast"};

struct TorchContext {
  const Options& options;
  GpuProbe gpu;
};

// max |got - ref| / (|a| . |b|) elementwise, all in double: the same
// normalised error as kiln-smoke's checks, expressed with tensors.
double normalised_error(const torch::Tensor& got, const torch::Tensor& ref, const torch::Tensor& scale) {
  auto err = (got.to(torch::kCPU, torch::kFloat64) - ref).abs() / scale.clamp_min(1e-30);
  if (!err.isfinite().all().item<bool>()) return INFINITY;
  return err.max().item<double>();
}

void record_error(Section& s, Json& j, const std::string& what, double err, double tol) {
  j["max_norm_err"] = err;
  j["tolerance"] = tol;
  j["ok"] = err <= tol;
  if (!(err <= tol))
    s.fail(what + ": max normalised error " + std::to_string(err) + " over tolerance " + std::to_string(tol));
}

void run_env(TorchContext& ctx, Section& s) {
  const Options& o = ctx.options;
  Json& d = s.data;
  d["torch_version"] = TORCH_VERSION;
  d["cuda_available"] = torch::cuda::is_available();
  d["device_count"] = static_cast<int>(torch::cuda::device_count());
  d["cudnn_available"] = torch::cuda::cudnn_is_available();
  std::optional<std::string> cuda, cudnn;
  try {
    cuda = cuda_version_string(static_cast<int>(at::detail::getCUDAHooks().versionCUDART()));
    cudnn = cudnn_version_string(static_cast<int>(at::detail::getCUDAHooks().versionCuDNN()));
  } catch (const std::exception& e) {
    s.notes.push_back(std::string("CUDA/cuDNN version not readable: ") + e.what());
  }
  d["cuda_version"] = cuda ? Json(*cuda) : Json();
  d["cudnn_version"] = cudnn ? Json(*cudnn) : Json();
  auto expect = [&](const char* what, const std::string& want, const std::optional<std::string>& got) {
    if (want.empty()) return;
    if (!got || !version_matches(want, *got))
      s.fail(version_mismatch_message(what, want, got ? *got : "none"));
  };
  expect("CUDA", o.expect_cuda, cuda);
  expect("cuDNN", o.expect_cudnn, cudnn);
  if (!o.expect_torch.empty() && std::string(TORCH_VERSION).rfind(o.expect_torch, 0) != 0)
    s.fail(version_mismatch_message("torch", o.expect_torch, TORCH_VERSION));
  if (ctx.gpu.usable && !torch::cuda::cudnn_is_available())
    s.fail("torch sees CUDA but not cuDNN (torch::cuda::cudnn_is_available() is false)");
  if (!ctx.gpu.usable) {
    if (s.status != Status::Fail) s.status = Status::Skipped;
    s.notes.push_back("no usable GPU: " + ctx.gpu.error);
    return;
  }
  s.pass_unless_failed();
}

void run_matmul(TorchContext&, Section& s) {
  auto a = torch::randn({512, 448});
  auto b = torch::randn({448, 384});
  for (auto [dtype, name, tol] : {std::tuple{torch::kFloat32, "fp32", 1e-5},
                                  std::tuple{torch::kBFloat16, "bf16", 1.6e-2}}) {
    // Round the inputs to the precision first: the reference then sees
    // exactly what the GPU multiplies.
    auto ad = a.to(dtype).to(torch::kFloat64), bd = b.to(dtype).to(torch::kFloat64);
    auto ref = ad.mm(bd), scale = ad.abs().mm(bd.abs());
    auto got = a.to(dtype).cuda().mm(b.to(dtype).cuda());
    auto cpu = a.to(dtype).mm(b.to(dtype));  // the same op on the CPU backend
    Json j = Json::object();
    record_error(s, j, std::string("matmul ") + name + " on CUDA", normalised_error(got, ref, scale), tol);
    j["cpu_max_norm_err"] = normalised_error(cpu, ref, scale);
    s.data[name] = j;
  }
  s.pass_unless_failed();
}

void run_conv2d(TorchContext&, Section& s) {
  // cuDNN may use TF32 for FP32 convolutions (torch's default): the bound
  // allows TF32's 10-bit mantissa; a wrong result is far beyond it.
  const double tol = 4e-3;
  struct Shape { std::vector<int64_t> x, w; int64_t stride, pad; };
  const std::vector<Shape> shapes{{{2, 3, 32, 32}, {8, 3, 3, 3}, 1, 1},
                                  {{1, 16, 28, 28}, {32, 16, 5, 5}, 2, 2},
                                  {{4, 8, 17, 23}, {16, 8, 1, 1}, 1, 0}};
  Json all = Json::array();
  for (const auto& sh : shapes) {
    auto x = torch::randn(sh.x), w = torch::randn(sh.w);
    auto xd = x.to(torch::kFloat64), wd = w.to(torch::kFloat64);
    auto ref = torch::conv2d(xd, wd, {}, sh.stride, sh.pad);
    auto scale = torch::conv2d(xd.abs(), wd.abs(), {}, sh.stride, sh.pad);
    auto got = torch::conv2d(x.cuda(), w.cuda(), {}, sh.stride, sh.pad);
    auto cpu = torch::conv2d(x, w, {}, sh.stride, sh.pad);
    Json j = Json::object();
    j["x"] = Json::array(sh.x);
    j["w"] = Json::array(sh.w);
    record_error(s, j, "conv2d on CUDA", normalised_error(got, ref, scale), tol);
    j["cpu_max_norm_err"] = normalised_error(cpu, ref, scale);
    all.push_back(j);
  }
  s.data["shapes"] = all;
  s.data["cudnn_enabled"] = at::globalContext().userEnabledCuDNN();
  s.pass_unless_failed();
}

// A forward + backward step of a tiny conv net under bf16 autocast.
void run_autocast(TorchContext&, Section& s) {
  namespace nn = torch::nn;
  nn::Sequential net(nn::Conv2d(nn::Conv2dOptions(3, 8, 3).padding(1)), nn::ReLU(),
                     nn::Conv2d(nn::Conv2dOptions(8, 8, 3).padding(1)), nn::ReLU(),
                     nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({1, 1})), nn::Flatten(),
                     nn::Linear(8, 10));
  net->to(torch::kCUDA);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.05));
  auto x = torch::randn({16, 3, 32, 32}, torch::kCUDA);
  auto target = torch::randint(0, 10, {16}, torch::TensorOptions(torch::kCUDA).dtype(torch::kLong));

  auto step = [&](bool record) {
    opt.zero_grad();
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    auto out = net->forward(x);
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
    if (record) s.data["forward_dtype"] = std::string(c10::toString(out.scalar_type()));
    auto loss = torch::nn::functional::cross_entropy(out.to(torch::kFloat32), target);
    loss.backward();
    opt.step();
    return loss.item<double>();
  };
  double first = step(true);
  if (s.data["forward_dtype"].str() != "BFloat16")
    s.fail("autocast did not run the forward in bf16 (output dtype " + s.data["forward_dtype"].str() + ")");
  bool grads_ok = true;
  for (const auto& p : net->parameters())
    grads_ok &= p.grad().defined() && p.grad().isfinite().all().item<bool>() && p.grad().abs().sum().item<double>() > 0;
  double last = first;
  for (int i = 0; i < 20; ++i) last = step(false);
  s.data["loss_first"] = first;
  s.data["loss_after_20_steps"] = last;
  s.data["grads_finite_nonzero"] = grads_ok;
  if (!std::isfinite(first) || !std::isfinite(last)) s.fail("loss is not finite");
  if (!grads_ok) s.fail("a parameter's gradient is missing, non-finite or all zero");
  if (!(last < first)) s.fail("loss did not decrease over 20 SGD steps on one batch");
  s.pass_unless_failed();
}

using RunFn = void (*)(TorchContext&, Section&);

int run(int argc, char** argv) {
  auto start = std::chrono::steady_clock::now();
  ReportHeader header{"kiln-smoke-torch", KILN_SMOKE_VERSION, utc_timestamp()};
  Options opts;
  try {
    opts = parse_options(argc, argv, kSections);
  } catch (const std::invalid_argument& e) {
    std::cerr << "kiln-smoke-torch: " << e.what() << "\n" << usage("kiln-smoke-torch", kSections);
    return kExitUsage;
  }
  if (opts.help) {
    std::cout << usage("kiln-smoke-torch", kSections);
    return kExitPass;
  }
  header.build["torch_version"] = TORCH_VERSION;
  header.expected["cuda"] = opts.expect_cuda.empty() ? Json() : Json(opts.expect_cuda);
  header.expected["cudnn"] = opts.expect_cudnn.empty() ? Json() : Json(opts.expect_cudnn);
  header.expected["torch"] = opts.expect_torch.empty() ? Json() : Json(opts.expect_torch);
  torch::manual_seed(opts.seed ? opts.seed : static_cast<std::uint64_t>(std::time(nullptr)));

  TorchContext ctx{opts};
  ctx.gpu.usable = torch::cuda::is_available() && torch::cuda::device_count() > 0;
  ctx.gpu.device_count = ctx.gpu.usable ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (!ctx.gpu.usable) ctx.gpu.error = "torch::cuda::is_available() is false";

  const std::vector<std::pair<std::string, RunFn>> defs{
      {"env", run_env}, {"matmul", run_matmul}, {"conv2d", run_conv2d}, {"autocast", run_autocast}};
  std::vector<Section> sections;
  for (const auto& [name, fn] : defs) {
    Section s;
    s.name = name;
    s.required = required(opts, name, true);
    if (!selected(opts, name)) {
      s.notes.push_back("not selected (--only/--skip)");
    } else if (!ctx.gpu.usable && name != "env") {
      s.notes.push_back("no usable GPU: " + ctx.gpu.error);
    } else {
      auto t0 = std::chrono::steady_clock::now();
      try {
        fn(ctx, s);
      } catch (const std::exception& e) {
        s.fail(e.what());
      }
      s.duration_s = seconds_since(t0);
    }
    sections.push_back(std::move(s));
  }
  enforce_no_gpu_contract(ctx.gpu, sections);
  int code = decide_exit_code(ctx.gpu, sections);
  std::string text = make_report(header, ctx.gpu, sections, seconds_since(start), code).dump(opts.json_indent) + "\n";
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (!opts.output.empty()) std::ofstream(opts.output) << text;
  return code;
}

}  // namespace
}  // namespace kiln::smoke

int main(int argc, char** argv) {
  try {
    return kiln::smoke::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kiln-smoke-torch: " << e.what() << "\n";
    return kiln::smoke::kExitFail;
  }
}
