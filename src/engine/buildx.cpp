// BuildKit through `docker buildx build`, run as a subprocess with an
// argument vector (posix_spawnp, no shell). Progress comes as rawjson on
// stderr (concatenated pretty-printed SolveStatus objects), the result in
// --metadata-file; --load puts the image into the engine behind DOCKER_HOST.
#include "engine/internal.h"
#include "util/base64.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

extern char** environ;

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

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
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

// Runs argv with stderr into `on_err`; returns the exit status (128+signal).
int run(std::vector<std::string> argv, std::vector<std::string> env,
        const std::function<void(std::string_view)>& on_err) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  auto av = c_strings(argv);
  auto ev = c_strings(env);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, av[0], &fa, nullptr, av.data(), ev.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    on_err(std::string_view(buf, static_cast<size_t>(n)));
  }
  ::close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
  int status = run(buildx_argv(req, opts_, metadata), buildx_env(client_.endpoint()),
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
