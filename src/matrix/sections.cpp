#include "matrix/sections.h"

#include <cstdlib>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "util/cc.h"

namespace kiln::matrix {

namespace {

const std::set<std::string> kIpcModes{"private", "shareable", "host", "none"};
const std::set<std::string> kSlurmContainers{"docker", "podman", "enroot", "pyxis"};
// (gpus is every runner's: what an exported unit asks for; 0 only here.)
const std::set<std::string> kSlurmKeys{"partition", "container", "container_cli", "time_limit",
                                       "queue_timeout", "sbatch_args", "job_dir"};
// Keys that would hold a secret: kiln's files never do (credentials come
// from credential helpers and the Docker config), so these get their own
// message rather than "unknown key".
const std::set<std::string> kSecretKeys{"username", "password", "auth", "token", "identitytoken"};

// "1g", "512m", "64k", "1073741824" (docker run --shm-size's grammar, binary
// units); 0 when it is not one.
std::int64_t parse_shm_size(std::string_view text) {
  std::int64_t n = 0;
  std::size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (n > (std::int64_t(1) << 40)) return 0;
    n = n * 10 + (text[i] - '0');
  }
  if (i == 0) return 0;
  std::string unit(text.substr(i));
  if (unit == "b" || unit.empty()) return n;
  if (unit == "k" || unit == "kb") return n << 10;
  if (unit == "m" || unit == "mb") return n << 20;
  if (unit == "g" || unit == "gb") return n << 30;
  return 0;
}

// The NAME of docker-credential-NAME, as Docker's credHelpers write it.
bool helper_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace

bool SectionReader::is_string(const TomlFields& f, std::string_view key) {
  const toml::node* n = f.raw().get(key);
  return n && n->is_string();
}

bool SectionReader::check(const std::string& text, const Location& at, grammar::Check grammar, std::string_view what) {
  auto problem = grammar(text);
  if (problem) error(at, fmt::format("{} {} {}", what, grammar::quoted(text), *problem));
  return !problem;
}

std::vector<std::string> SectionReader::gpu_classes(TomlFields& f) {
  std::vector<std::string> out;
  for (const Value& v : values(f, "gpu_classes", false)) {
    auto cc = ComputeCapability::parse(v.text);
    if (!cc) error(v.where, fmt::format("GPU class {} is not a compute capability such as \"sm_90\"", grammar::quoted(v.text)));
    else if (cc->sm() != v.text) error(v.where, fmt::format("GPU class \"{}\" must be written \"{}\"", v.text, cc->sm()));
    else gpu_named_.push_back(v);
    out.push_back(v.text);
  }
  return out;
}

std::vector<Value> SectionReader::values(TomlFields& f, std::string_view key, bool required) {
  std::vector<Value> out;
  std::vector<std::string> texts = f.strings(key, required);
  const toml::node* node = f.raw().get(key);
  if (!node) return out;
  if (const toml::array* arr = node->as_array()) {
    for (const toml::node& item : *arr)
      if (item.is_string()) out.push_back({*item.value<std::string>(), location_of(item, file_)});
  } else if (node->is_string()) {
    out.push_back({texts.at(0), location_of(*node, file_)});
  }
  return out;
}

void SectionReader::read_registry(TomlFields& top, Registry& reg, bool with_repository) {
  const toml::table* t = top.table("registry");
  if (!t) return;
  TomlFields f = fields(*t);
  reg.where = f.where();
  for (const auto& [key, node] : *t) {
    std::string name(key.str());
    if (kSecretKeys.count(name))  // never quote the value
      error(location_of(node, file_), fmt::format("[registry] {}: kiln never reads credentials from its files; name a "
                                                  "credential_helper or use `docker login` (the Docker config)", name));
    else if (name == "repository" && !with_repository)
      error(location_of(node, file_), "[registry] repository names one matrix's images; set it in the matrix, not here");
    else reg.keys[name] = location_of(node, file_);
  }
  f.only({"url", "repository", "insecure", "credential_helper", "username", "password", "auth", "token", "identitytoken"});
  reg.url = f.str("url").value_or("");
  if (with_repository) reg.repository = f.str("repository").value_or("");
  reg.insecure = f.boolean("insecure").value_or(false);
  reg.credential_helper = f.str("credential_helper").value_or("");
  // An empty url would send release tags to Docker Hub.
  if (is_string(f, "url")) check(reg.url, f.where("url"), grammar::registry, "registry.url");
  if (with_repository && is_string(f, "repository"))
    check(reg.repository, f.where("repository"), grammar::repository, "registry.repository");
  if (is_string(f, "credential_helper")) check_credential_helper(reg.credential_helper, f.where("credential_helper"));
}

bool SectionReader::check_credential_helper(const std::string& name, const Location& at) {
  std::string_view h = name;
  if (!h.starts_with("docker-credential-") && helper_name(name)) return true;
  if (h.starts_with("docker-credential-") && helper_name(h.substr(18)))
    error(at, fmt::format("credential_helper is the helper's NAME, as in Docker's credHelpers: write \"{}\" "
                          "(kiln runs docker-credential-{})", h.substr(18), h.substr(18)));
  else
    error(at, fmt::format("credential helper {} is not a helper name (letters, digits, '-', '_', '.')", grammar::quoted(name)));
  return false;
}

std::string SectionReader::beside_file(const std::string& path) const {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (path.starts_with("~/"))
    if (const char* home = std::getenv("HOME"); home && *home) p = fs::path(home) / path.substr(2);
  if (p.is_relative()) p = fs::path(file_).parent_path() / p;
  return fs::absolute(p).lexically_normal().string();
}

// jobs, platform and labels: where the scheduler may put a build.
void SectionReader::read_build_keys(TomlFields& f, Runner& r) {
  if (auto jobs = f.integer("jobs")) {
    if (*jobs < 1 || *jobs > 256) error(f.where("jobs"), fmt::format("jobs must be 1 to 256, got {}", *jobs));
    else r.jobs = static_cast<int>(*jobs);
  }
  r.platforms = f.strings("platform");
  for (const auto& p : r.platforms)
    if (p != "linux/amd64" && p != "linux/arm64")
      error(f.where("platform"), fmt::format("platform {} is not \"linux/amd64\" or \"linux/arm64\"", grammar::quoted(p)));
  r.labels = f.strings("labels");
  for (const auto& l : r.labels) check(l, f.where("labels"), grammar::tag, "engine label");
}

// gpu = "slurm"'s keys; given to another runner they would do nothing, so
// they are an error there.
void SectionReader::read_slurm(TomlFields& f, const toml::table& t, Runner& r) {
  if (r.gpu != GpuMode::slurm) {
    for (const auto& [key, node] : t)
      if (kSlurmKeys.count(std::string(key.str())))
        error(location_of(node, file_), fmt::format("runner '{}': {} applies to gpu = \"slurm\" runners only", r.name, key.str()));
    return;
  }
  Runner::Slurm& s = r.slurm;
  s.partition = f.str("partition").value_or("");
  auto minutes = [&](const char* key, int& out, int min) {
    if (auto v = f.integer(key)) {
      if (*v < min || *v > 525600) error(f.where(key), fmt::format("{} is in minutes, {} to 525600", key, min));
      else out = static_cast<int>(*v);
    }
  };
  if (auto n = f.integer("gpus")) {
    if (*n < 0 || *n > 1024) error(f.where("gpus"), "gpus is the GPU count a job asks for (--gres=gpu:N): 0 to 1024");
    else s.gpus = static_cast<int>(*n);
  }
  r.gpus = s.gpus;  // what an exported unit of this runner asks for (0: none, on a GPU-less node)
  s.container = f.str("container").value_or("docker");
  if (!kSlurmContainers.count(s.container))
    error(f.where("container"), "container must be \"docker\", \"podman\", \"enroot\" or \"pyxis\"");
  s.container_cli = f.str("container_cli").value_or("");
  minutes("time_limit", s.time_limit_min, 1);
  minutes("queue_timeout", s.queue_timeout_min, 1);
  s.sbatch_args = f.strings("sbatch_args");
  for (const auto& a : s.sbatch_args)
    if (!a.starts_with("--") || a.find('\n') != std::string::npos)
      error(f.where("sbatch_args"), fmt::format("sbatch_args entry {} must be one long option (\"--account=ml\")", grammar::quoted(a)));
  s.job_dir = f.str("job_dir").value_or("");
  if (!s.job_dir.empty()) check(s.job_dir, f.where("job_dir"), grammar::absolute_path, "job_dir");
  if (!s.container_cli.empty() && s.container_cli.find_first_of(" \t\n'\"$`\\") != std::string::npos)
    error(f.where("container_cli"), "container_cli is one program (a name or a path), not a command line");
}

void SectionReader::read_runners(TomlFields& top, std::vector<Runner>& out) {
  const toml::table* t = top.table("runners");
  if (!t) return;
  for (const auto& [key, node] : *t) {
    const toml::table* rt = node.as_table();
    if (!rt) {
      error(location_of(node, file_), fmt::format("runner '{}' must be a table ([runners.{}])", key.str(), key.str()));
      continue;
    }
    TomlFields f = fields(*rt);
    f.only({"engine", "backend", "gpu", "gpu_classes", "devices", "driver_libs", "shm_size", "ipc", "builder", "tls_verify",
            "cert_path", "ca", "cert", "key", "jobs", "platform", "labels", "gpus", "gpu_product", "partition",
            "container", "container_cli", "time_limit", "queue_timeout", "sbatch_args", "job_dir"});
    Runner r;
    r.name = std::string(key.str());
    r.engine = f.str("engine").value_or("");
    r.tls_verify = f.boolean("tls_verify");
    // Paths to files, never key material: the TOML holds where they are.
    for (auto [k, field] : {std::pair{"cert_path", &r.cert_path}, {"ca", &r.ca}, {"cert", &r.cert}, {"key", &r.key}})
      if (auto v = f.str(k)) *field = beside_file(*v);
    const std::string backend = f.str("backend").value_or("engine"), gpu = f.str("gpu").value_or("none");
    if (auto b = parse_backend(backend)) r.backend = *b;
    else error(f.where("backend"), "backend must be \"engine\" or \"buildx\"");
    if (auto g = parse_gpu_mode(gpu)) r.gpu = *g;
    else error(f.where("gpu"), "gpu must be \"none\", \"nvidia\", \"cdi\", \"devices\" or \"slurm\"");
    r.gpu_classes = gpu_classes(f);
    r.devices = f.strings("devices");
    r.driver_libs = f.str("driver_libs").value_or("");
    if (auto shm = f.str("shm_size")) {
      r.shm_size = parse_shm_size(*shm);
      if (r.shm_size <= 0)
        error(f.where("shm_size"), fmt::format("shm_size \"{}\" is not a size: a number of bytes with an optional k, m or g (\"1g\", \"64m\")", *shm));
    }
    r.builder = f.str("builder").value_or("");
    if (!r.builder.empty() && r.backend != Backend::buildx)
      error(f.where("builder"), fmt::format("runner '{}': builder \"{}\" is a buildx builder; it needs backend = \"buildx\"",
                                            r.name, r.builder));
    else if (f.str("builder")) check(r.builder, f.where("builder"), grammar::tag, "builder name");
    r.ipc = f.str("ipc").value_or("");
    r.gpu_product = f.str("gpu_product").value_or("");
    if (!r.gpu_product.empty()) check(r.gpu_product, f.where("gpu_product"), grammar::tag, "gpu_product");
    if (auto n = f.integer("gpus"); n && r.gpu != GpuMode::slurm) {  // a Slurm runner's: read_slurm
      if (*n < 1 || *n > 64) error(f.where("gpus"), fmt::format("gpus = {} is not a GPU count (1 to 64)", *n));
      else r.gpus = static_cast<int>(*n);
    }
    if (!r.ipc.empty() && !kIpcModes.count(r.ipc))
      error(f.where("ipc"), "ipc must be \"private\", \"shareable\", \"host\" or \"none\"");
    read_build_keys(f, r);
    r.where = f.where();
    read_slurm(f, *rt, r);
    check(r.name, r.where, grammar::tag, "runner name");
    for (const auto& d : r.devices) check(d, f.where("devices"), grammar::absolute_path, "device");
    if (!r.driver_libs.empty()) check(r.driver_libs, f.where("driver_libs"), grammar::absolute_path, "driver_libs");
    out.push_back(std::move(r));
  }
}

}  // namespace kiln::matrix
