// The gpu check: the smoke suite inside the image, on a runner's GPUs.
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <fstream>

#include <fmt/format.h>

#include "render/render.h"
#include "util/text.h"
#include "util/version.h"
#include "util/json_out.h"
#include "verify/internal.h"

namespace kiln::verify::detail {

namespace fs = std::filesystem;

namespace {

// The devel image whose nvcc compiles the suite: the combination itself
// when it is a devel image, else its devel sibling.
const plan::Combo* devel_for(const plan::Combo& c, const plan::Plan& p) {
  if (c.versions.flavor == "devel") return &c;
  auto axes = c.axes;
  axes["flavor"] = "devel";
  for (const auto& x : p.combos)
    if (x.axes == axes && x.status == plan::Status::valid) return &x;
  return nullptr;
}

// kernels/ sources only: never a build directory that happens to be there.
void copy_kernels(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::create_directories(to);
  for (const char* part : {"CMakeLists.txt", "cmake", "src", "torch"})
    if (fs::exists(from / part)) fs::copy(from / part, to / part, fs::copy_options::recursive);
}

std::vector<std::string> smoke_args(const plan::Combo& c) {
  std::vector<std::string> args{"--expect-cuda", Version::must(c.versions.cuda).prefix(2).str()};
  if (!c.versions.nccl.empty()) args.insert(args.end(), {"--expect-nccl", c.versions.nccl});
  if (!c.versions.cudnn.empty()) args.insert(args.end(), {"--expect-cudnn", c.versions.cudnn});
  return args;
}

// NCCL/PyTorch/NVSHMEM switches that keep NVLink multicast off: a host that
// sets them (shared GPUs, where a multicast fault can take every GPU out)
// wants them inside the smoke container too, whose environment is the
// image's, not kiln's.
void pass_safety_env(engine::ContainerSpec& spec) {
  for (const char* name : {"NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS"})
    if (const char* v = std::getenv(name)) spec.env.push_back(std::string(name) + "=" + v);
}

// The image's own LD_LIBRARY_PATH, if it sets one.
std::string image_ld_path(const std::optional<engine::ImageInfo>& info) {
  if (info)
    for (const auto& kv : info->env)
      if (kv.rfind("LD_LIBRARY_PATH=", 0) == 0) return kv.substr(16);
  return "";
}

// How the runner's GPUs reach the container (see docs/verify.md).
// `image_ld` is the image's LD_LIBRARY_PATH: a container Env entry replaces
// the image's value, so the driver directory goes in front of it rather than
// instead of it (images find their CUDA/cuDNN/NCCL libraries through it).
void attach_gpus(const Runner& r, engine::ContainerSpec& spec, const std::string& image_ld) {
  if (r.gpu == "nvidia") {
    spec.device_requests.push_back({"nvidia", -1, {}, {{"gpu"}}});
  } else if (r.gpu == "cdi") {
    spec.device_requests.push_back({"cdi", 0, {"nvidia.com/gpu=all"}, {}});
  } else if (r.gpu == "devices") {
    for (const auto& d : r.devices) spec.devices.push_back({d, d, "rwm"});
    if (!r.driver_libs.empty()) {
      spec.binds.push_back(r.driver_libs + ":" + r.driver_libs + ":ro");
      spec.env.push_back("LD_LIBRARY_PATH=" + r.driver_libs + (image_ld.empty() ? "" : ":" + image_ld));
    }
  }
}

std::string build_smoke_image(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                              const std::string& image, const std::string& devel, const Runner& runner,
                              const Options& o, std::string& error) {
  fs::path ctx = fs::path(o.state_dir) / "smoke" / p.matrix_name / c.id;
  fs::create_directories(ctx);
  write_file_atomic((ctx / "Dockerfile").string(), renderer.render_smoke(c, image, devel));
  copy_kernels(o.kernels_dir, ctx / "kernels");
  std::string tag = "kiln.local/" + p.matrix_name + "-smoke:" + c.id;
  engine::BuildRequest req;
  req.context_dir = ctx;
  req.tags = {tag};
  req.build_args = {{"KILN_DEVEL", devel}, {"KILN_IMAGE", image}};
  req.network = "host";
  fs::path log_path = fs::path(o.state_dir) / "logs" / p.matrix_name / (c.id + ".smoke.log");
  fs::create_directories(log_path.parent_path());
  std::ofstream log(log_path, std::ios::trunc);
  auto builder = engine::make_builder(runner.backend, runner.endpoint);
  engine::BuildResult b = builder->build(req, nullptr, [&](std::string_view line) { log << line << '\n'; });
  if (!b.ok) {
    error = fmt::format("the smoke image did not build at \"{}\": {} (log: {})", b.failed_step, b.error, log_path.string());
    return "";
  }
  return tag;
}

// Reads kiln-smoke's JSON; the failed sections become the problems.
void read_report(const std::string& out, CheckResult& r) {
  try {
    r.detail = nlohmann::json::parse(out);
  } catch (const nlohmann::json::exception&) {
    r.problems.push_back("kiln-smoke printed no JSON report");
    return;
  }
  if (!r.detail.contains("sections")) return;
  for (const auto& [name, s] : r.detail["sections"].items()) {
    if (s.value("status", "") != "fail") continue;
    std::string why = "failed";
    if (s.contains("errors") && s["errors"].is_array() && !s["errors"].empty())
      why = s["errors"][0].is_string() ? s["errors"][0].get<std::string>() : json_text(s["errors"][0]);
    r.problems.push_back(fmt::format("{}: {}", name, why));
  }
}

}  // namespace

CheckResult gpu_check(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                      const std::string& image, const Runner& runner, const Options& o) {
  CheckResult r{"gpu", runner.name, "error", {}, {}, false};
  engine::Client client(runner.endpoint);
  const plan::Combo* devel = devel_for(c, p);
  std::string devel_image = devel ? render::local_image(p, devel->id) : "";
  if (!devel || !client.image_exists(devel_image)) {
    r.problems.push_back(devel ? "its devel image " + devel_image + " is not built: the smoke suite is compiled there"
                               : "the matrix has no devel image of this combination to compile the smoke suite");
    return r;
  }
  std::string error;
  std::string smoke = build_smoke_image(c, p, renderer, image, devel_image, runner, o, error);
  if (smoke.empty()) {
    r.problems.push_back(error);
    return r;
  }
  engine::ContainerSpec spec;
  spec.image = smoke;
  spec.cmd = smoke_args(c);
  spec.network_mode = "none";
  spec.readonly_rootfs = true;
  spec.tmpfs = {{"/tmp", "rw,size=256m"}};
  spec.shm_size = 1LL << 30;  // NCCL's shared-memory transport
  if (runner.gpu != "none") pass_safety_env(spec);
  attach_gpus(runner, spec, image_ld_path(client.inspect_image(smoke)));
  std::string id = client.create_container(spec);
  client.start_container(id);
  engine::WaitResult w = client.wait_container(id, std::chrono::seconds(o.timeout_s));
  engine::Logs logs = client.container_logs(id);
  client.remove_container(id);
  read_report(logs.out, r);
  r.detail["exit_code"] = w.exit_code;
  if (w.timed_out) {
    r.status = "failed";
    r.problems.push_back(fmt::format("timed out after {} s", o.timeout_s));
  } else if (w.exit_code == 0) {
    r.status = "passed";
  } else if (w.exit_code == 3) {
    r.status = "no-gpu";  // a host without a usable GPU: never a pass
    r.problems.push_back(fmt::format("runner {} ({} mode) gave the container no usable GPU", runner.name, runner.gpu));
  } else if (w.exit_code == 1) {
    r.status = "failed";
  } else {
    r.problems.push_back(fmt::format("kiln-smoke exited {}: {}", w.exit_code, logs.err.substr(0, 400)));
  }
  return r;
}

}  // namespace kiln::verify::detail
