// The gpu check: the smoke suite inside the image, on a runner's GPUs.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <fstream>

#include <fmt/format.h>

#include "render/render.h"
#include "util/text.h"
#include "util/version.h"
#include "util/json_out.h"
#include "util/sha256.h"
#include "verify/internal.h"
#include "verify/smoke_unit.h"

namespace kiln::verify::detail {

namespace fs = std::filesystem;

namespace {

// kernels/ sources only: never a build directory that happens to be there.
void copy_kernels(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::create_directories(to);
  for (const char* part : {"CMakeLists.txt", "cmake", "src", "torch", "unit"})
    if (fs::exists(from / part)) fs::copy(from / part, to / part, fs::copy_options::recursive);
}

// A library's own version call names 3 components (cuDNN 9.19.0); the
// catalog may pin a wheel's 4 (9.19.0.56), which only smoke_torch.py can
// compare (against the wheel's dist-info).
std::string three(const std::string& v) {
  auto parsed = Version::parse(v);
  return parsed ? parsed->prefix(3).str() : v;
}

std::vector<std::string> smoke_args(const plan::Combo& c, bool exact) {
  std::vector<std::string> args{"--expect-cuda", Version::must(c.versions.cuda).prefix(2).str()};
  if (!c.versions.nccl.empty()) args.insert(args.end(), {"--expect-nccl", exact ? c.versions.nccl : three(c.versions.nccl)});
  if (!c.versions.cudnn.empty()) args.insert(args.end(), {"--expect-cudnn", exact ? c.versions.cudnn : three(c.versions.cudnn)});
  if (!c.versions.pytorch.empty() && exact) args.insert(args.end(), {"--expect-torch", c.versions.pytorch});
  return args;
}

}  // namespace

std::vector<SmokeProgram> smoke_programs(const plan::Combo& c) {
  std::vector<SmokeProgram> out{{"kiln-smoke", {}, smoke_args(c, false)}};
  if (c.versions.pytorch.empty()) return out;
  out.push_back({"torch", {"python3", "/opt/kiln-smoke/smoke_torch.py"}, smoke_args(c, true)});
  // kiln-smoke-torch has no nccl section and takes no --expect-nccl.
  std::vector<std::string> lib{"--expect-cuda", Version::must(c.versions.cuda).prefix(2).str(), "--expect-torch",
                               c.versions.pytorch};
  if (!c.versions.cudnn.empty()) lib.insert(lib.end(), {"--expect-cudnn", three(c.versions.cudnn)});
  out.push_back({"libtorch", {"/opt/kiln-smoke/kiln-smoke-torch"}, lib});
  return out;
}

namespace {

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
  if (r.gpu == matrix::GpuMode::nvidia) {
    spec.device_requests.push_back({"nvidia", -1, {}, {{"gpu"}}});
  } else if (r.gpu == matrix::GpuMode::cdi) {
    spec.device_requests.push_back({"cdi", 0, {"nvidia.com/gpu=all"}, {}});
  } else if (r.gpu == matrix::GpuMode::devices) {
    for (const auto& d : r.devices) spec.devices.push_back({d, d, "rwm"});
    if (!r.driver_libs.empty()) {
      spec.binds.push_back(r.driver_libs + ":" + r.driver_libs + ":ro");
      spec.env.push_back("LD_LIBRARY_PATH=" + r.driver_libs + (image_ld.empty() ? "" : ":" + image_ld));
    }
  }
}

// One build of the smoke template; the log goes to `log_path`.
engine::BuildResult build_smoke(const fs::path& ctx, const std::string& tag, const std::string& target,
                                const std::map<std::string, std::string>& args, const fs::path& log_path,
                                const Runner& runner, const std::string& platform) {
  engine::BuildRequest req;
  req.context_dir = ctx;
  req.tags = {tag};
  req.target = target;
  req.build_args = args;
  req.network = "host";
  // The smoke stages are of the image's platform (its devel stage too).
  if (platform != "x86_64") req.platform = matrix::oci_platform(platform);
  fs::create_directories(log_path.parent_path());
  std::ofstream log(log_path, std::ios::trunc);
  auto builder = engine::make_builder(matrix::to_string(runner.backend), runner.endpoint);
  return builder->build(req, nullptr, [&](std::string_view line) { log << line << '\n'; });
}

// What the unit's wrapper passes each program (kernels/unit/kiln-smoke-unit).
std::map<std::string, std::string> program_args(const plan::Combo& c) {
  std::map<std::string, std::string> out;
  for (const auto& prog : smoke_programs(c)) {
    const char* var = prog.name == "kiln-smoke" ? "KILN_SMOKE_ARGS" : prog.name == "torch" ? "KILN_TORCH_ARGS" : "KILN_LIBTORCH_ARGS";
    out[var] = join(prog.args, " ");
  }
  return out;
}

}  // namespace

std::string suite_image_tag(const std::string& devel_id, const std::string& suite_hash, const ArchList& arch) {
  return "kiln.local/kiln-smoke-suite:" + sha256_hex(devel_id + "\n" + suite_hash + "\n" + arch.str()).substr(0, 24);
}

SmokeImage build_smoke_image(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                             const std::string& image, const std::string& image_id, const std::string& devel,
                             const Runner& runner, const Options& o) {
  SmokeImage out;
  engine::Client client(runner.endpoint);
  auto devel_info = client.inspect_image(devel);
  if (!devel_info) {
    out.error = "its devel image " + devel + " is not built: the smoke suite is compiled there";
    return out;
  }
  fs::path ctx = fs::path(o.state_dir) / "smoke" / p.matrix_name / c.id;
  fs::create_directories(ctx);
  write_file_atomic((ctx / "Dockerfile").string(), renderer.render_smoke(c, image, devel));
  copy_kernels(o.kernels_dir, ctx / "kernels");
  fs::path logs = fs::path(o.state_dir) / "logs" / p.matrix_name;
  // The suite, once per (devel image, suite hash, arch list): every image of
  // that toolchain (the runtime and the devel of a combination, a rebuild
  // with a new id) reuses it.
  out.suite_image = suite_image_tag(devel_info->id, o.suite_hash, c.arch);
  if (!client.image_exists(out.suite_image)) {
    engine::BuildResult b = build_smoke(ctx, out.suite_image, "suite",
                                        {{"KILN_DEVEL", devel}, {"KILN_IMAGE", image}, {"KILN_SUITE_HASH", o.suite_hash}},
                                        logs / (c.id + ".smoke-suite.log"), runner, c.platform);
    if (!b.ok) {
      out.error = fmt::format("the smoke suite did not build at \"{}\": {} (log: {})", b.failed_step, b.error,
                              (logs / (c.id + ".smoke-suite.log")).string());
      return out;
    }
    out.suite_built = true;
  }
  // The image's own smoke image: the suite's files on top of it, with the
  // unit's identity and arguments baked in.
  std::map<std::string, std::string> args{{"KILN_DEVEL", out.suite_image}, {"KILN_IMAGE", image},
                                          {"KILN_IMAGE_ID", image_id}, {"KILN_SUITE_HASH", o.suite_hash}};
  for (auto& [k, v] : program_args(c)) args[k] = v;
  std::string tag = render::local_smoke_image(p, c.id);
  fs::path log_path = logs / (c.id + ".smoke.log");
  engine::BuildResult b = build_smoke(ctx, tag, "", args, log_path, runner, c.platform);
  if (!b.ok) {
    out.error = fmt::format("the smoke image did not build at \"{}\": {} (log: {})", b.failed_step, b.error, log_path.string());
    return out;
  }
  out.tag = tag;
  return out;
}

namespace {

// One program's run: its JSON report, exit code and the problems it names.
struct ProgramRun {
  nlohmann::json report;
  std::int64_t exit_code = -1;
  bool timed_out = false;
  std::vector<std::string> problems;
};

// Reads a smoke program's JSON; the failed sections become the problems,
// named "<prefix>/<section>" when a prefix is given.
void read_report(const std::string& out, const std::string& prefix, ProgramRun& r) {
  std::string who = prefix.empty() ? "kiln-smoke" : prefix;
  try {
    r.report = nlohmann::json::parse(out);
  } catch (const nlohmann::json::exception&) {
    r.problems.push_back(who + " printed no JSON report");
    return;
  }
  if (!r.report.contains("sections")) return;
  for (const auto& [name, s] : r.report["sections"].items()) {
    std::string label = prefix.empty() ? name : prefix + "/" + name;
    if (s.value("status", "") != "fail") continue;
    std::string why = "failed";
    if (s.contains("errors") && s["errors"].is_array() && !s["errors"].empty())
      why = s["errors"][0].is_string() ? s["errors"][0].get<std::string>() : json_text(s["errors"][0]);
    r.problems.push_back(fmt::format("{}: {}", label, why));
  }
}

// Each program in its own container with the same GPU, device and shm
// settings: a crash of one (a segfault in LibTorch) cannot hide another's report.
ProgramRun run_program(engine::Client& client, const engine::ContainerSpec& base, const SmokeProgram& prog,
                       const Options& o) {
  engine::ContainerSpec spec = base;
  spec.entrypoint = prog.entrypoint;
  spec.cmd = prog.args;
  ProgramRun r;
  std::string id = client.create_container(spec);
  try {
    client.start_container(id);
  } catch (const std::exception& e) {  // kiln-smoke-torch missing: the devel image had no torch to build it
    client.remove_container(id);
    r.problems.push_back(fmt::format("{} did not start ({}): {}", prog.name,
                                     prog.entrypoint.empty() ? std::string("its command") : prog.entrypoint.front(), e.what()));
    return r;
  }
  engine::WaitResult w = client.wait_container(id, std::chrono::seconds(o.timeout_s));
  engine::Logs logs = client.container_logs(id);
  client.remove_container(id);
  read_report(logs.out, prog.name == "kiln-smoke" ? "" : prog.name, r);
  r.exit_code = w.exit_code;
  r.timed_out = w.timed_out;
  if (w.timed_out) r.problems.push_back(fmt::format("{} timed out after {} s", prog.name, o.timeout_s));
  else if (w.exit_code != 0 && w.exit_code != 1 && w.exit_code != 3)
    r.problems.push_back(fmt::format("{} exited {}: {}", prog.name, w.exit_code, logs.err.substr(0, 400)));
  return r;
}

}  // namespace

CheckStatus combined_status(const std::vector<std::pair<std::int64_t, bool>>& runs) {
  bool failed = false, error = false, no_gpu = false;
  for (const auto& [exit_code, timed_out] : runs) {
    failed |= timed_out || exit_code == 1;
    error |= !timed_out && exit_code != 0 && exit_code != 1 && exit_code != 3;
    no_gpu |= exit_code == 3;
  }
  return failed ? CheckStatus::failed : error ? CheckStatus::error : no_gpu ? CheckStatus::no_gpu : CheckStatus::passed;
}

// What a report shows of a gpu check: the GPUs used, the versions that
// loaded, GEMM TFLOP/s (cuBLAS in kiln-smoke against torch.matmul), NCCL and
// DDP busbw. Read from the programs' documents; a missing value is null.
nlohmann::json smoke_summary(const nlohmann::json& d) {
  auto at = [](const nlohmann::json& j, std::initializer_list<const char*> path) -> nlohmann::json {
    const nlohmann::json* x = &j;
    for (const char* k : path) {
      if (!x->is_object() || !x->contains(k)) return nullptr;
      x = &(*x)[k];
    }
    return *x;
  };
  nlohmann::json s = nlohmann::json::object();
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& dev : at(d, {"sections", "env", "data", "devices"}))
    gpus.push_back(fmt::format("{} {} (sm_{})", dev.value("index", 0), dev.value("name", "?"),
                               [&] { std::string cc = dev.value("compute_capability", ""); std::erase(cc, '.'); return cc; }()));
  if (gpus.empty())
    for (const auto& dev : at(d, {"torch", "sections", "env", "data", "devices"}))
      gpus.push_back(fmt::format("{} {}", dev.value("index", 0), dev.value("name", "?")));
  s["gpus"] = gpus;
  s["cuda_runtime"] = at(d, {"sections", "env", "data", "runtime_version"});
  s["cublas"] = at(d, {"sections", "env", "data", "libraries", "cublas"});
  s["cudnn"] = at(d, {"sections", "env", "data", "libraries", "cudnn"});
  s["nccl"] = at(d, {"sections", "env", "data", "libraries", "nccl"});
  nlohmann::json cublas_bf16 = nullptr;
  for (const auto& dev : at(d, {"sections", "cublas", "data", "devices"}))
    if (cublas_bf16.is_null()) cublas_bf16 = at(dev, {"bf16", "tflops"});
  s["gemm_bf16_tflops_cublas"] = cublas_bf16;
  s["nccl_ranks"] = at(d, {"sections", "nccl", "data", "ranks"});
  s["nccl_busbw_gbps"] = at(d, {"sections", "nccl", "data", "busbw_gbps"});
  if (d.contains("torch")) {
    const nlohmann::json env = at(d, {"torch", "sections", "env", "data"});
    s["torch"] = at(env, {"torch_version"});
    s["torch_cudnn"] = at(env, {"cudnn_version"});
    s["torch_nccl"] = at(env, {"nccl_version"});
    s["cudnn_loaded_from"] = at(env, {"cuDNN_loaded", "paths"});
    s["gemm_bf16_tflops_torch_matmul"] = at(d, {"torch", "sections", "matmul", "data", "bf16_tflops"});
    s["ddp_ranks"] = at(d, {"torch", "sections", "ddp", "data", "world_size"});
    s["ddp_busbw_gbps"] = at(d, {"torch", "sections", "ddp", "data", "all_reduce", "busbw_gbps"});
    s["shm_bytes"] = at(d, {"torch", "sections", "shm", "data", "size_bytes"});
  }
  auto num = [&](const char* k) { return s[k].is_number() ? fmt::format("{:.0f}", s[k].get<double>()) : std::string("-"); };
  auto str = [&](const char* k) { return s[k].is_string() ? s[k].get<std::string>() : std::string("-"); };
  // One rank moves nothing between GPUs: its busbw is 0 by definition, not a measurement.
  auto busbw = [&](const char* ranks, const char* gbps) {
    if (s[ranks].is_number() && s[ranks].get<int>() < 2) return std::string("n/a (one rank)");
    return s[gbps].is_number() ? num(gbps) + " GB/s" : std::string("-");
  };
  std::string line = fmt::format("{} GPU(s): {}", gpus.size(), gpus.empty() ? "-" : gpus[0].get<std::string>());
  for (size_t i = 1; i < gpus.size(); ++i) line += ", " + gpus[i].get<std::string>();
  if (d.contains("torch"))
    line += fmt::format("; torch {} cuDNN {} NCCL {}; GEMM bf16 TFLOP/s cuBLAS {} / torch.matmul {}; NCCL busbw {}; "
                        "DDP {} rank(s) busbw {}",
                        str("torch"), str("torch_cudnn"), str("torch_nccl"), num("gemm_bf16_tflops_cublas"),
                        num("gemm_bf16_tflops_torch_matmul"), busbw("nccl_ranks", "nccl_busbw_gbps"), num("ddp_ranks"),
                        busbw("ddp_ranks", "ddp_busbw_gbps"));
  else
    line += fmt::format("; cuDNN {} NCCL {}; GEMM bf16 {} TFLOP/s; NCCL {} rank(s) busbw {}", str("cudnn"), str("nccl"),
                        num("gemm_bf16_tflops_cublas"), num("nccl_ranks"), busbw("nccl_ranks", "nccl_busbw_gbps"));
  s["line"] = line;
  return s;
}

namespace {

// An engine runner's run: this host (kiln reaches engines over local
// sockets), the GPUs the report names.
Placement engine_placement(const Runner& runner, const nlohmann::json& report) {
  Placement where = read_placement(report);
  where.scheduler = "engine";
  where.runner = runner.name;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0) where.node = host;
  return where;
}

}  // namespace

CheckResult gpu_check(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                      const std::string& image, const Runner& runner, const Options& o) {
  CheckResult r{"gpu", runner.name, CheckStatus::error, {}, {}, false};
  engine::Client client(runner.endpoint);
  const plan::Combo* devel = p.sibling(c, "devel");  // its nvcc compiles the suite (itself, if devel)
  std::string devel_image = devel ? render::local_image(p, devel->id) : "";
  if (!devel || !client.image_exists(devel_image)) {
    r.problems.push_back(devel ? "its devel image " + devel_image + " is not built: the smoke suite is compiled there"
                               : "the matrix has no devel image of this combination to compile the smoke suite");
    return r;
  }
  auto image_info = client.inspect_image(image);
  SmokeImage built = build_smoke_image(c, p, renderer, image, image_info ? image_info->id : "", devel_image, runner, o);
  if (built.tag.empty()) {
    r.problems.push_back(built.error);
    return r;
  }
  const std::string& smoke = built.tag;
  engine::ContainerSpec spec;
  spec.image = smoke;
  spec.network_mode = "none";
  spec.readonly_rootfs = true;
  spec.tmpfs = {{"/tmp", "rw,size=256m"}};
  spec.shm_size = runner.shm_size;  // NCCL's shared-memory transport, DataLoader workers
  spec.ipc_mode = runner.ipc;
  if (runner.gpu != matrix::GpuMode::none) pass_safety_env(spec);
  attach_gpus(runner, spec, image_ld_path(client.inspect_image(smoke)));
  std::vector<ProgramRun> runs;
  nlohmann::json programs = nlohmann::json::object();
  for (const auto& prog : smoke_programs(c)) {
    runs.push_back(run_program(client, spec, prog, o));
    ProgramRun& run = runs.back();
    if (prog.name == "kiln-smoke") {
      r.detail = run.report.is_object() ? run.report : nlohmann::json::object();  // the suite's document, as before
      r.detail["exit_code"] = run.exit_code;
    } else {
      r.detail[prog.name] = run.report;  // smoke_torch.py under "torch", kiln-smoke-torch under "libtorch"
    }
    programs[prog.name] = {{"exit_code", run.exit_code}, {"timed_out", run.timed_out},
                           {"args", prog.args}};
    r.problems.insert(r.problems.end(), run.problems.begin(), run.problems.end());
  }
  r.detail["programs"] = programs;
  r.detail["summary"] = smoke_summary(r.detail);
  r.detail["shm_size"] = runner.shm_size;
  r.detail["suite_hash"] = o.suite_hash;
  r.detail["smoke_suite"] = {{"image", built.suite_image}, {"built", built.suite_built}};
  r.detail["placement"] = placement_json(engine_placement(runner, r.detail));
  if (!runner.ipc.empty()) r.detail["ipc"] = runner.ipc;
  std::vector<std::pair<std::int64_t, bool>> codes;
  for (const auto& run : runs) codes.emplace_back(run.exit_code, run.timed_out);
  r.status = combined_status(codes);
  if (r.status == CheckStatus::no_gpu)
    r.problems.push_back(fmt::format("runner {} ({} mode) gave the container no usable GPU", runner.name, matrix::to_string(runner.gpu)));
  return r;
}

}  // namespace kiln::verify::detail
