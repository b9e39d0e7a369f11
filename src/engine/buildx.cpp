// BuildKit through `docker buildx build`, run as a subprocess with an
// argument vector (posix_spawnp, no shell). Progress comes as rawjson on
// stderr (concatenated pretty-printed SolveStatus objects), the result in
// --metadata-file; --load puts the image into the engine behind DOCKER_HOST.
#include "engine/internal.h"
#include "util/base64.h"
#include "util/child.h"
#include "util/env_limits.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

extern char** environ;  // buildx_env starts from kiln's own

namespace kiln::engine::detail {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;


std::vector<std::string> buildx_argv(const BuildRequest& r, const BuildxOptions& o,
                                     const fs::path& metadata) {
  std::vector<std::string> a = {o.docker, "buildx", "build", "--builder", o.builder,
                                "--progress", "rawjson", "--metadata-file", metadata.string(),
                                "--load", "--file", (r.context_dir / r.dockerfile).string()};
  for (const auto& t : r.tags) a.insert(a.end(), {"--tag", t});
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

// The caller's environment with DOCKER_HOST pointing at our engine, and no
// default provenance attestations (the docker driver cannot store them).
std::vector<std::string> buildx_env(const Endpoint& ep) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv = *e;
    if (kv.starts_with("DOCKER_HOST=") || kv.starts_with("DOCKER_CONTEXT=")) continue;
    env.emplace_back(kv);
  }
  env.push_back("DOCKER_HOST=" + ep.uri());
  env.push_back("BUILDX_NO_DEFAULT_ATTESTATIONS=1");
  return env;
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
  int status = run(client_.endpoint(), buildx_argv(req, opts_, metadata), buildx_env(client_.endpoint()),
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
  auto j = json::parse(in, nullptr, false);
  if (j.is_object()) {
    res.digest = j.value("containerimage.digest", "");
    res.image_id = j.value("containerimage.config.digest", "");
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
