// BuildKit through `docker buildx build`, run as a subprocess with an
// argument vector (posix_spawnp, no shell). Progress comes as rawjson on
// stderr (concatenated pretty-printed SolveStatus objects), the result in
// --metadata-file; --load puts the image into the engine behind DOCKER_HOST
// (unix, tcp with TLS files, or an ssh engine's forwarded socket).
// A named builder that is not that engine (another driver, or the docker
// driver of another context) pushes to the staging registry instead
// (BuildxOptions::push_repository; docs/build-farm.md).
#include "engine/internal.h"
#include "util/base64.h"
#include "util/child.h"
#include "util/env_limits.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>


namespace kiln::engine::detail {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;


// Where the result goes: --load into the engine, or (a builder that is not
// this engine) a push to the staging repository, by digest where the driver
// can (docker's cannot: a kiln-owned tag there), never a multi-GB --load.
void output_args(const BuildRequest& r, const BuildxOptions& o, std::vector<std::string>& a) {
  if (o.push_repository.empty()) {
    a.push_back("--load");
    for (const auto& t : r.tags) a.insert(a.end(), {"--tag", t});
  } else if (o.push_tag.empty()) {
    a.insert(a.end(), {"--output", "type=image,name=" + o.push_repository +
                                       ",push-by-digest=true,name-canonical=true,push=true"});
  } else {
    a.insert(a.end(), {"--output", "type=registry,name=" + o.push_repository + ":" + o.push_tag});
  }
}

std::vector<std::string> buildx_argv(const BuildRequest& r, const BuildxOptions& o,
                                     const fs::path& metadata) {
  std::vector<std::string> a = {o.docker};
  if (!o.context.empty()) a.insert(a.end(), {"--context", o.context});
  a.insert(a.end(), {"buildx", "build", "--builder", o.builder, "--progress", "rawjson", "--metadata-file",
                     metadata.string(), "--file", (r.context_dir / r.dockerfile).string()});
  output_args(r, o, a);
  for (const auto& [k, v] : r.build_args) a.insert(a.end(), {"--build-arg", k + "=" + v});
  for (const auto& [k, v] : r.labels) a.insert(a.end(), {"--label", k + "=" + v});
  if (!r.target.empty()) a.insert(a.end(), {"--target", r.target});
  if (r.no_cache) a.push_back("--no-cache");
  if (!r.network.empty()) a.insert(a.end(), {"--network", r.network});
  if (!r.platform.empty()) a.insert(a.end(), {"--platform", r.platform});
  // The source's name only: buildx reads the value itself.
  for (const auto& s : r.secrets)
    a.insert(a.end(), {"--secret", s.env.empty() ? "id=" + s.id + ",src=" + s.file : "id=" + s.id + ",env=" + s.env});
  a.push_back(r.context_dir.string());
  return a;
}

// The caller's environment with the docker CLI pointed at our engine
// (docker_cli_env: DOCKER_HOST, TLS files, an ssh engine's forwarded
// socket), and no default provenance attestations (the docker driver cannot
// store them). A named context carries its own endpoint, and the CLI refuses
// DOCKER_HOST beside --context, so then the engine variables are left out.
std::vector<std::string> buildx_env(const Endpoint& ep, const BuildxOptions& o, const fs::path& scratch) {
  std::vector<std::string> env = docker_cli_env(ep, scratch);
  if (!o.context.empty())
    std::erase_if(env, [](const std::string& kv) {
      return kv.starts_with("DOCKER_HOST=") || kv.starts_with("DOCKER_TLS") || kv.starts_with("DOCKER_CERT_PATH=");
    });
  env.push_back("BUILDX_NO_DEFAULT_ATTESTATIONS=1");
  return env;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// Runs a short docker CLI command; its stdout (or stderr) and exit status.
std::pair<int, std::string> docker_output(std::vector<std::string> argv, int fd) {
  using namespace std::chrono_literals;
  std::string out;
  ChildSpec spec{.argv = std::move(argv), .env = {}, .input = {}, .capture_fd = fd, .idle = 0ms, .total = 60s};
  ChildResult r = run_child(spec, [&](std::string_view b) {
    out += b;
    return out.size() < (1 << 20);
  });
  if (r.timed_out) return {124, "no answer within 60 s"};
  return {r.status, out};
}

// Follows rawjson SolveStatus objects: vertex starts are progress, vertex
// errors name the failed step, logs are base64 output of RUN steps.
class RawJsonStream {
 public:
  RawJsonStream(BuildResult& res, const ProgressFn& progress, const LogSink& log)
      : res_(res), progress_(progress), log_(log),
        split_([this](const json& m) { on_status(m); }, [this](std::string_view t) { on_text(t); }) {}
  void feed(std::string_view bytes) { split_.feed(bytes); }
  void finish() {
    split_.finish();
    for (auto& [_, lines] : logs_) lines.finish();
  }
  std::string final_error;  // buildx's closing "ERROR: ..." line

 private:
  void emit(std::string_view l) {
    if (log_) log_(l);
  }
  void on_text(std::string_view t) {
    emit(t);
    if (t.starts_with("ERROR: ")) final_error = std::string(t.substr(7));
  }
  void on_status(const json& m) {
    for (const auto& v : m.value("vertexes", json::array())) on_vertex(v);
    for (const auto& l : m.value("logs", json::array())) on_log(l);
  }
  void on_vertex(const json& v) {
    std::string name = v.value("name", "");
    std::string digest = v.value("digest", "");
    if (v.contains("started") && started_.insert(digest).second) {
      emit("#" + name);
      int n = 0, t = 0;
      if (parse_step(name, n, t) && progress_) progress_(n, t, name);
    }
    if (auto e = v.value("error", std::string()); !e.empty() && res_.error.empty()) {
      res_.failed_step = name;
      res_.error = e;
      emit("ERROR: " + e);
    }
  }
  void on_log(const json& l) {
    std::string vertex = l.value("vertex", "");
    auto it = logs_.find(vertex);
    if (it == logs_.end())
      it = logs_.emplace(vertex, LineAssembler([this](std::string_view s) { emit(s); })).first;
    it->second.feed(base64_decode(l.value("data", "")).value_or(""));
  }

  BuildResult& res_;
  const ProgressFn& progress_;
  const LogSink& log_;
  std::set<std::string> started_;
  std::map<std::string, LineAssembler> logs_;
  JsonSplitter split_;
};

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kiln-buildx-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Runs docker buildx with its stderr (the rawjson stream) into `on_err`;
// returns its exit status (128+signal). A stream silent for the engine's
// idle limit ends it and everything it started (its process group), and
// throws Timeout naming the engine: a build stays alive by its stream.
int run(const Endpoint& ep, std::vector<std::string> argv, std::vector<std::string> env,
        const std::function<void(std::string_view)>& on_err) {
  using namespace std::chrono_literals;
  ChildSpec spec{.argv = std::move(argv), .env = std::move(env), .capture_fd = 2,
                 .idle = env_seconds("KILN_ENGINE_IDLE_TIMEOUT", 900s)};
  ChildResult r = run_child(spec, [&](std::string_view bytes) {
    on_err(bytes);
    return true;
  });
  if (r.timed_out)
    throw Timeout("engine " + ep.uri() + ": docker buildx printed nothing for " + describe_seconds(spec.idle) +
                  " (KILN_ENGINE_IDLE_TIMEOUT); it and its process group were killed");
  return r.status;
}

class BuildxBuilder final : public Builder {
 public:
  BuildxBuilder(Endpoint ep, BuildxOptions opts) : client_(std::move(ep)), opts_(std::move(opts)) {}
  std::string name() const override { return "buildx"; }
  BuildResult build(const BuildRequest& req, const ProgressFn& progress, const LogSink& log) override;

 private:
  void read_result(const fs::path& metadata, const BuildRequest& req, BuildResult& res);
  Client client_;
  BuildxOptions opts_;
};

BuildResult BuildxBuilder::build(const BuildRequest& req, const ProgressFn& progress,
                                 const LogSink& log) {
  auto t0 = std::chrono::steady_clock::now();
  client_.ping();  // an unreachable engine is Unreachable here too, not a failed build
  BuildResult res;
  TempDir tmp;
  fs::path metadata = tmp.path / "metadata.json";
  RawJsonStream stream(res, progress, log);
  int status = run(client_.endpoint(), buildx_argv(req, opts_, metadata), buildx_env(client_.endpoint(), opts_, tmp.path),
                   [&](std::string_view c) { stream.feed(c); });
  stream.finish();
  if (status != 0 && res.error.empty())
    res.error = !stream.final_error.empty() ? stream.final_error
                                            : "docker buildx exited with status " + std::to_string(status);
  if (res.error.empty()) read_result(metadata, req, res);
  res.ok = res.error.empty();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

void BuildxBuilder::read_result(const fs::path& metadata, const BuildRequest& req, BuildResult& res) {
  std::ifstream in(metadata);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (auto m = parse_buildx_metadata(text)) {
    res.digest = m->digest;
    res.image_id = m->config_digest;
  }
  if (!opts_.push_repository.empty()) {  // the image is in the registry, not in this engine
    if (res.digest.empty() || res.image_id.empty())
      res.error = "buildx pushed to " + opts_.push_repository +
                  " but its metadata names no image digest and config digest (metadata " + metadata.string() + ")";
    else
      res.pushed = opts_.push_repository + "@" + res.digest;
    return;
  }
  // The docker driver writes no config digest: the engine knows the image id.
  if (!req.tags.empty())
    if (auto info = client_.inspect_image(req.tags.front())) res.image_id = info->id;
  if (res.image_id.empty()) res.image_id = res.digest;
  if (res.image_id.empty()) res.error = "buildx reported no image (metadata " + metadata.string() + ")";
}

}  // namespace

std::unique_ptr<Builder> make_buildx_builder(const Endpoint& ep, const BuildxOptions& opts) {
  return std::make_unique<BuildxBuilder>(ep, opts);
}

}  // namespace kiln::engine::detail

namespace kiln::engine {

std::optional<BuildxBuilderInfo> parse_buildx_inspect(std::string_view text) {
  BuildxBuilderInfo info;
  bool driver = false;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string key = detail::trim(line.substr(0, colon)), value = detail::trim(line.substr(colon + 1));
    if (key == "Name" && info.name.empty()) info.name = value;
    else if (key == "Driver" && !driver) {
      info.driver = value;
      driver = true;
    } else if (key == "Endpoint" && info.endpoint.empty()) info.endpoint = value;
  }
  if (!driver || info.driver.empty()) return std::nullopt;
  return info;
}

std::optional<BuildxMetadata> parse_buildx_metadata(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  auto str = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  return BuildxMetadata{str("containerimage.digest"), str("containerimage.config.digest"), str("image.name")};
}

BuildxBuilderInfo inspect_buildx_builder(const std::string& name, const std::string& docker) {
  auto [status, out] = detail::docker_output({docker, "buildx", "inspect", name}, 1);
  auto info = status == 0 ? parse_buildx_inspect(out) : std::nullopt;
  if (!info) {
    std::string why = detail::trim(detail::docker_output({docker, "buildx", "inspect", name}, 2).second);
    throw std::invalid_argument("buildx has no usable builder \"" + name + "\"" + (why.empty() ? "" : " (" + why + ")") +
                                "; `docker buildx ls` lists the builders, `docker buildx create` makes one");
  }
  // The docker driver builds on its context's engine: which one decides
  // whether its images are this runner's (--load) or another's (push).
  if (info->driver == "docker") {
    if (info->endpoint.find("://") != std::string::npos) info->docker_host = info->endpoint;
    else if (!info->endpoint.empty()) {
      auto [st, host] = detail::docker_output(
          {docker, "context", "inspect", info->endpoint, "--format", "{{.Endpoints.docker.Host}}"}, 1);
      if (st == 0) info->docker_host = detail::trim(host);
    }
  }
  return *info;
}

}  // namespace kiln::engine
