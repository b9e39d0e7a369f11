// The portable smoke unit: its command lines, its result, its verdict.
#include "verify/smoke_unit.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "state/ledger.h"
#include "util/json_out.h"
#include "util/sha256.h"
#include "util/text.h"
#include "verify/verify.h"

namespace kiln::verify {

namespace fs = std::filesystem;

const char* to_string(UnitEngine e) {
  switch (e) {
    case UnitEngine::docker: return "docker";
    case UnitEngine::podman: return "podman";
    case UnitEngine::pyxis: break;
  }
  return "pyxis";
}

std::optional<UnitEngine> parse_unit_engine(std::string_view word) {
  for (UnitEngine e : {UnitEngine::docker, UnitEngine::podman, UnitEngine::pyxis})
    if (word == to_string(e)) return e;
  if (word == "enroot" || word == "slurm") return UnitEngine::pyxis;
  return std::nullopt;
}

std::optional<ImageRef> split_digest_ref(std::string_view ref) {
  size_t at = ref.find('@');
  if (at == std::string_view::npos || !is_sha256_digest(ref.substr(at + 1))) return std::nullopt;
  std::string_view name = ref.substr(0, at);
  size_t slash = name.find('/');
  ImageRef out;
  out.digest = std::string(ref.substr(at + 1));
  // The first component is a registry when it looks like a host (Docker's rule).
  std::string_view first = slash == std::string_view::npos ? std::string_view{} : name.substr(0, slash);
  if (!first.empty() && (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
                         first == "localhost")) {
    out.registry = std::string(first);
    out.path = std::string(name.substr(slash + 1));
  } else {
    out.path = std::string(name);
  }
  if (out.path.empty()) return std::nullopt;
  return out;
}

namespace {

// The flags that attach `u.gpus` GPUs the way the runner's mode does.
void gpu_flags(const SmokeUnit& u, std::string_view engine, std::vector<std::string>& argv) {
  switch (u.gpu_mode) {
    case matrix::GpuMode::none: return;
    case matrix::GpuMode::nvidia:
      argv.insert(argv.end(), {"--gpus", std::to_string(u.gpus)});
      return;
    case matrix::GpuMode::cdi:
      for (int i = 0; i < u.gpus; ++i) argv.insert(argv.end(), {"--device", fmt::format("nvidia.com/gpu={}", i)});
      return;
    case matrix::GpuMode::slurm:  // the engine on the node is outside the job's cgroup: it sees every GPU
      if (engine == "docker") argv.insert(argv.end(), {"--gpus", "all"});
      else argv.insert(argv.end(), {"--device", "nvidia.com/gpu=all"});
      argv.insert(argv.end(), {"-e", "CUDA_VISIBLE_DEVICES"});
      return;
    case matrix::GpuMode::devices:
      for (const auto& d : u.devices) argv.insert(argv.end(), {"--device", d});
      if (!u.driver_libs.empty()) {
        argv.insert(argv.end(), {"-v", u.driver_libs + ":" + u.driver_libs + ":ro"});
        argv.insert(argv.end(), {"-e", "LD_LIBRARY_PATH=" + u.driver_libs +
                                           (u.image_ld_path.empty() ? "" : ":" + u.image_ld_path)});
      }
      return;
  }
}

// The NVLink-multicast switches kiln passes into smoke containers (smoke.cpp):
// a unit says them outright, so a shared host's run is as safe as kiln's.
const char* const kSafetyEnv[] = {"NCCL_NVLS_ENABLE=0", "TORCH_SYMM_MEM_DISABLE_MULTICAST=1", "NVSHMEM_DISABLE_NVLS=1"};

std::vector<std::string> engine_argv(const SmokeUnit& u, const char* engine, const std::string& program) {
  std::vector<std::string> argv{"timeout", std::to_string(u.timeout_s), program.empty() ? engine : program, "run", "--rm", "--network", "none",
                                "--read-only", "--tmpfs", "/tmp:rw,size=256m", "--shm-size", std::to_string(u.shm_size)};
  for (const char* kv : kSafetyEnv) argv.insert(argv.end(), {"-e", kv});
  argv.insert(argv.end(), {"-e", "KILN_RUNNER=" + u.runner, "-e", std::string("KILN_SCHEDULER=") + engine});
  gpu_flags(u, engine, argv);
  argv.insert(argv.end(), {"--entrypoint", kUnitProgram, u.smoke_ref});
  return argv;
}

std::vector<std::string> pyxis_argv(const SmokeUnit& u) {
  auto ref = split_digest_ref(u.smoke_ref);
  if (!ref) throw std::invalid_argument("the smoke image is not named by digest: " + u.smoke_ref);
  // enroot's form: REGISTRY#PATH@DIGEST (the '#' tells the registry apart).
  std::string image = (ref->registry.empty() ? "" : ref->registry + "#") + ref->path + "@" + ref->digest;
  int minutes = std::max(1, (u.timeout_s + 59) / 60);
  std::vector<std::string> argv{"srun", "--ntasks=1"};
  if (u.gpus > 0) argv.push_back(fmt::format("--gres=gpu:{}", u.gpus));  // 0: a GPU-less CI node's job
  argv.insert(argv.end(), {fmt::format("--time={}", minutes), "--container-image=" + image, "--no-container-mount-home", "--container-writable",
                                "--export=ALL,NCCL_NVLS_ENABLE=0,TORCH_SYMM_MEM_DISABLE_MULTICAST=1,NVSHMEM_DISABLE_NVLS=1,"
                                "KILN_SCHEDULER=slurm,KILN_RUNNER=" + u.runner,
                                kUnitProgram});
  return argv;
}

bool needs_quotes(const std::string& word) {
  if (word.empty()) return true;
  return std::any_of(word.begin(), word.end(), [](unsigned char c) {
    return !(std::isalnum(c) || std::string_view("@%+=:,./_-#").find(static_cast<char>(c)) != std::string_view::npos);
  });
}

}  // namespace

std::vector<std::string> unit_argv(const SmokeUnit& u, UnitEngine e, const std::string& program) {
  switch (e) {
    case UnitEngine::docker: return engine_argv(u, "docker", program);
    case UnitEngine::podman: return engine_argv(u, "podman", program);
    case UnitEngine::pyxis: break;
  }
  return pyxis_argv(u);
}

std::string shell_line(const std::vector<std::string>& argv) {
  std::vector<std::string> words;
  for (const auto& w : argv) {
    if (!needs_quotes(w)) {
      words.push_back(w);
      continue;
    }
    std::string q = "'";
    for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    words.push_back(q + "'");
  }
  return join(words, " ");
}

std::string unit_command(const SmokeUnit& u, UnitEngine e) { return shell_line(unit_argv(u, e)); }

nlohmann::json to_json(const SmokeUnit& u) {
  nlohmann::json j{{"combo", u.combo_id},        {"runner", u.runner},         {"image_id", u.image_id},
                   {"image", u.image_ref},       {"smoke_image", u.smoke_ref}, {"suite_hash", u.suite_hash},
                   {"gpu_classes", u.gpu_classes}, {"gpus", u.gpus},           {"shm_size", u.shm_size},
                   {"timeout_s", u.timeout_s},   {"gpu_mode", matrix::to_string(u.gpu_mode)}};
  if (!u.gpu_product.empty()) j["gpu_product"] = u.gpu_product;
  if (!u.devices.empty()) j["devices"] = u.devices;
  if (!u.driver_libs.empty()) j["driver_libs"] = u.driver_libs;
  if (!u.image_ld_path.empty()) j["image_ld_path"] = u.image_ld_path;
  return j;
}

SmokeUnit unit_from_json(const nlohmann::json& j) {
  try {
    SmokeUnit u;
    u.combo_id = j.at("combo").get<std::string>();
    u.runner = j.value("runner", "");
    u.image_id = j.at("image_id").get<std::string>();
    u.image_ref = j.at("image").get<std::string>();
    u.smoke_ref = j.at("smoke_image").get<std::string>();
    u.suite_hash = j.at("suite_hash").get<std::string>();
    u.gpu_classes = j.value("gpu_classes", std::vector<std::string>{});
    u.gpu_product = j.value("gpu_product", "");
    u.gpus = j.value("gpus", 1);
    u.shm_size = j.value("shm_size", std::int64_t{1} << 30);
    u.timeout_s = j.value("timeout_s", 300);
    auto mode = matrix::parse_gpu_mode(j.value("gpu_mode", "nvidia"));
    if (!mode) throw std::invalid_argument("unknown gpu_mode " + j.value("gpu_mode", ""));
    u.gpu_mode = *mode;
    u.devices = j.value("devices", std::vector<std::string>{});
    u.driver_libs = j.value("driver_libs", "");
    u.image_ld_path = j.value("image_ld_path", "");
    return u;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("not a smoke unit: ") + e.what());
  }
}

namespace {

std::string str_at(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// The failed sections of one program's report, "prefix/section: why".
void collect_problems(const nlohmann::json& report, const std::string& prefix, std::vector<std::string>& out) {
  if (!report.is_object() || !report.contains("sections") || !report["sections"].is_object()) return;
  for (const auto& [name, s] : report["sections"].items()) {
    if (!s.is_object() || s.value("status", "") != "fail") continue;
    std::string why = "failed";
    if (s.contains("errors") && s["errors"].is_array() && !s["errors"].empty() && s["errors"][0].is_string())
      why = s["errors"][0].get<std::string>();
    out.push_back(fmt::format("{}{}: {}", prefix.empty() ? "" : prefix + "/", name, why));
  }
}

// GPU model, class and count from kiln-smoke's env section.
void read_devices(const nlohmann::json& smoke, Placement& p) {
  if (!smoke.is_object()) return;
  if (smoke.contains("gpu") && smoke["gpu"].is_object()) p.gpu_count = smoke["gpu"].value("device_count", 0);
  const auto* env = smoke.contains("sections") && smoke["sections"].contains("env") ? &smoke["sections"]["env"] : nullptr;
  if (!env || !env->contains("data")) return;
  const auto& d = (*env)["data"];
  if (d.contains("devices") && d["devices"].is_array() && !d["devices"].empty()) {
    const auto& dev = d["devices"][0];
    p.gpu_model = str_at(dev, "name");
    std::string cc = str_at(dev, "compute_capability");  // "9.0"
    cc.erase(std::remove(cc.begin(), cc.end(), '.'), cc.end());
    if (!cc.empty()) p.gpu_class = "sm_" + cc;
  }
  if (p.driver.empty()) p.driver = str_at(d, "driver_release");  // the module's 580.159.04
  if (p.driver.empty()) p.driver = str_at(d, "driver_version");  // else the CUDA driver API's 13.0
  if (p.date.empty()) p.date = str_at(smoke, "started_at");
  if (p.node.empty()) p.node = str_at(smoke, "host");
}

}  // namespace

std::string driver_branch(const std::string& driver) {
  std::string major = driver.substr(0, driver.find('.'));
  // A kernel module release (535, 580); the CUDA driver API's "13.0" is no branch.
  return major.size() >= 3 ? major : "";
}

Placement read_placement(const nlohmann::json& smoke_report) {
  Placement p;
  read_devices(smoke_report, p);
  p.driver_branch = driver_branch(p.driver);
  return p;
}

UnitResult read_unit_result(const nlohmann::json& doc) {
  UnitResult r;
  r.document = doc;
  if (!doc.is_object()) throw std::invalid_argument("not a JSON object");
  std::string schema = str_at(doc, "schema");
  nlohmann::json smoke;  // kiln-smoke's own report: the GPU facts
  if (schema == kUnitSchema) {
    r.image_id = str_at(doc, "image_id");
    r.suite_hash = str_at(doc, "suite_hash");
    r.exit_code = doc.value("exit_code", -1);
    r.placement.node = str_at(doc, "node");
    r.placement.runner = str_at(doc, "runner");
    r.placement.scheduler = str_at(doc, "scheduler");
    r.placement.job = str_at(doc, "job");
    r.placement.driver = str_at(doc, "driver_release");
    r.placement.date = str_at(doc, "started_at");
    if (doc.contains("programs") && doc["programs"].is_object())
      for (const auto& [name, prog] : doc["programs"].items()) {
        nlohmann::json report = prog.is_object() && prog.contains("report") ? prog["report"] : nlohmann::json();
        if (!report.is_object()) {
          r.problems.push_back(name + " printed no JSON report");
          continue;
        }
        collect_problems(report, name == "kiln-smoke" ? "" : name, r.problems);
        if (name == "kiln-smoke") smoke = report;
      }
  } else if (schema == "kiln-smoke/1") {
    smoke = doc;
    r.exit_code = doc.value("exit_code", -1);
    collect_problems(doc, "", r.problems);
  } else {
    throw std::invalid_argument(fmt::format("schema {} is neither {} nor kiln-smoke/1", schema.empty() ? "(none)" : schema,
                                            kUnitSchema));
  }
  read_devices(smoke, r.placement);
  r.placement.driver_branch = driver_branch(r.placement.driver);
  return r;
}

std::string unit_result_problem(const UnitResult& r, const std::string& expected_image_id,
                                const std::string& expected_suite_hash) {
  if (r.image_id.empty()) return "it names no image id (run the unit's kiln-smoke-unit, not kiln-smoke alone)";
  if (r.image_id != expected_image_id)
    return fmt::format("it names image {}, kiln expects {}", r.image_id, expected_image_id);
  if (r.suite_hash != expected_suite_hash)
    return fmt::format("it ran smoke suite {}, kiln expects {} (the suite changed: run the new unit)",
                       r.suite_hash.empty() ? "(none)" : r.suite_hash.substr(0, 16), expected_suite_hash.substr(0, 16));
  if (r.exit_code == 3) return "";  // no usable GPU: recorded as no-gpu, which never passes
  if (r.placement.gpu_model.empty()) return "it names no GPU model (sections.env.data.devices)";
  if (r.placement.driver.empty()) return "it names no driver version";
  if (r.placement.gpu_count <= 0) return "it names no GPU count (gpu.device_count)";
  return "";
}

const char* unit_status_word(int exit_code) {
  switch (exit_code) {
    case 0: return to_string(CheckStatus::passed);
    case 1: return to_string(CheckStatus::failed);
    case 3: return to_string(CheckStatus::no_gpu);
    default: break;
  }
  return to_string(CheckStatus::error);
}

nlohmann::json placement_json(const Placement& p) {
  return {{"scheduler", p.scheduler}, {"runner", p.runner},       {"node", p.node},
          {"job", p.job},             {"gpu_model", p.gpu_model}, {"gpu_class", p.gpu_class},
          {"driver", p.driver},       {"driver_branch", p.driver_branch}, {"gpu_count", p.gpu_count},
          {"date", p.date}};
}

Placement placement_from_json(const nlohmann::json& j) {
  Placement p;
  if (!j.is_object()) return p;
  p.scheduler = str_at(j, "scheduler");
  p.runner = str_at(j, "runner");
  p.node = str_at(j, "node");
  p.job = str_at(j, "job");
  p.gpu_model = str_at(j, "gpu_model");
  p.gpu_class = str_at(j, "gpu_class");
  p.driver = str_at(j, "driver");
  p.driver_branch = str_at(j, "driver_branch");
  p.gpu_count = j.value("gpu_count", 0);
  p.date = str_at(j, "date");
  return p;
}

void record_gpu_verdict(const std::string& state_dir, const std::string& image_id, const std::string& status,
                        const Placement& where, const std::string& suite_hash, const nlohmann::json& document,
                        const std::vector<std::string>& problems) {
  nlohmann::json detail = document.is_object() ? document : nlohmann::json::object();
  detail["placement"] = placement_json(where);
  detail["suite_hash"] = suite_hash;
  detail["problems"] = problems;
  state::Ledger ledger(state_dir + "/state.db");
  ledger.record_verdict({image_id, where.runner, "gpu", status, json_text(detail), 0});
}

std::string suite_hash(const std::string& kernels_dir, const std::string& smoke_template) {
  // Sorted relative paths and their bytes: the same tree hashes the same
  // wherever it is checked out.
  std::vector<std::pair<std::string, fs::path>> files;
  fs::path root(kernels_dir);
  for (const char* part : {"CMakeLists.txt", "cmake", "src", "torch", "unit"}) {
    fs::path p = root / part;
    if (fs::is_regular_file(p)) files.emplace_back(part, p);
    else if (fs::is_directory(p))
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.emplace_back(fs::relative(e.path(), root).generic_string(), e.path());
  }
  std::sort(files.begin(), files.end());
  Sha256 h;
  for (const auto& [name, path] : files) {
    std::string bytes = read_file(path.string());
    h.update(fmt::format("{}\n{}\n", name, bytes.size()));
    h.update(bytes);
  }
  h.update(fmt::format("smoke.Dockerfile.mustache\n{}\n", smoke_template.size()));
  h.update(smoke_template);
  return h.hex();
}

}  // namespace kiln::verify
