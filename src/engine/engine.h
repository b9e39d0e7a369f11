// The build engine: a Docker Engine API client over its unix socket (also
// Podman's Docker-compatible service), and two image builders behind one
// interface — the engine's own POST /build, and BuildKit via `docker buildx`.
// Endpoints, stream formats and Podman differences: docs/engine.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::engine {

// The socket is missing or refuses: an environment problem (callers exit 2).
// what(): "cannot reach the engine at unix:///path: <curl error>".
struct Unreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Reachable but silent: no connection, answer or stream byte within its
// limit (docs/engine.md, "Time limits"); also an environment problem.
// what(): "engine unix:///path did not answer GET /_ping within 60 s (KILN_ENGINE_TIMEOUT)".
struct Timeout : Unreachable {
  using Unreachable::Unreachable;
};

// The engine answered with an HTTP error; what() carries its "message".
struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& what) : std::runtime_error(what), status(status) {}
  int status;
};

// Where the engine listens. Only unix sockets: a TCP DOCKER_HOST is rejected
// (std::invalid_argument) rather than silently ignored.
struct Endpoint {
  std::string socket_path = "/var/run/docker.sock";
  std::string uri() const { return "unix://" + socket_path; }
  // "unix:///path/to.sock": that socket. kiln speaks to engines over unix
  // sockets only, so any other scheme (tcp://, ssh://, npipe://) or a
  // unix:// URL without an absolute path throws std::invalid_argument
  // naming the URL: never a socket path made of a host name.
  static Endpoint parse(std::string_view url);
  // DOCKER_HOST through parse(), else /var/run/docker.sock.
  static Endpoint from_env();
};

// ---- plain data --------------------------------------------------------

struct VersionInfo {
  std::string version, api_version, os, arch;
  bool podman = false;  // a "Podman Engine" component answered
};

struct ImageInfo {
  std::string id;  // "sha256:<config digest>"
  std::vector<std::string> repo_tags, repo_digests;
  std::vector<std::string> env;  // Config.Env, "K=V"
  std::map<std::string, std::string> labels;
  std::string user;
  std::int64_t size = 0;
};

// One entry of GET /images/{name}/history, newest first: the instruction
// that made a layer and the bytes it added (0 for metadata-only steps).
struct HistoryEntry {
  std::string created_by;
  std::int64_t size = 0;
};

// The `top` largest entries of a history, largest first (ties: newest first).
std::vector<HistoryEntry> largest_layers(std::vector<HistoryEntry> history, std::size_t top);

struct DeviceMapping {
  std::string host, container, permissions = "rwm";
};
struct DeviceRequest {
  std::string driver;  // "nvidia", "cdi"
  int count = 0;       // -1: all
  std::vector<std::string> device_ids;
  std::vector<std::vector<std::string>> capabilities;  // [["gpu"]]
};

struct ContainerSpec {
  std::string image;
  std::vector<std::string> cmd;  // empty: the image's CMD
  std::vector<std::string> entrypoint;
  std::vector<std::string> env;  // "K=V"
  std::string user;
  std::map<std::string, std::string> labels;
  // HostConfig
  std::vector<std::string> binds;  // "host:container[:ro]"
  std::int64_t shm_size = 0;       // bytes, 0: engine default
  std::string ipc_mode;            // IpcMode: "private", "shareable", "host", "none"; "" engine default
  std::vector<DeviceMapping> devices;
  std::vector<DeviceRequest> device_requests;
  bool readonly_rootfs = false;
  std::string network_mode;                  // "none", "host", "" = default
  std::map<std::string, std::string> tmpfs;  // path -> mount options
  std::int64_t memory = 0;                   // bytes, 0: unlimited
};

struct WaitResult {
  std::int64_t exit_code = -1;
  bool timed_out = false;  // killed by kiln after the time limit
  std::string error;       // the engine's wait error message, if any
};

struct Logs {
  std::string out, err;
};

struct PushResult {
  bool ok = false;
  std::string digest;  // "sha256:..." of the pushed manifest
  std::string error;
  // The registry failed the way a retry can mend (a 5xx or 429, a reset,
  // refused or timed-out connection, an EOF), as the engine reported it.
  bool transient = false;
  int attempts = 0;  // pushes tried
};

// How push_image retries transient failures: at most max_attempts pushes,
// waiting backoff, doubling, between them (the layers already uploaded are
// skipped by the engine, so a retry costs little).
struct PushRetry {
  int max_attempts = 4;
  std::chrono::milliseconds backoff{500};
};

// Whether an engine's push error text names a transient registry fault.
bool transient_push_error(std::string_view error);

// ---- building ----------------------------------------------------------

struct BuildRequest {
  std::filesystem::path context_dir;
  std::string dockerfile = "Dockerfile";  // relative to context_dir
  std::vector<std::string> tags;
  std::map<std::string, std::string> build_args;  // not for secrets: engines record them
  std::map<std::string, std::string> labels;
  std::string target;
  bool no_cache = false;
  std::string network;  // RUN steps' network: "" engine default, "host", "none"
  // The image's OCI platform ("linux/arm64"); empty: the engine's own. An
  // engine of another architecture runs the RUN steps through binfmt_misc
  // (qemu-user-static), docs/build.md.
  std::string platform;
  // Build secrets (RUN --mount=type=secret,id=ID): the value comes from an
  // environment variable or a file named here and reaches the builder
  // through BuildKit's session, never argv, build args or a layer. Only
  // the buildx backend can pass them; the engine backend refuses
  // (SecretsUnsupported) rather than build without or leak them.
  struct Secret {
    std::string id, env, file;  // exactly one of env, file
  };
  std::vector<Secret> secrets;
};

// A request with secrets on a backend that cannot pass them.
struct SecretsUnsupported : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct BuildResult {
  bool ok = false;
  std::string image_id;     // "sha256:<config digest>"
  std::string digest;       // manifest digest where the backend knows one (buildx)
  std::string failed_step;  // "Step 3/7 : RUN ..." or "[2/3] RUN ..."
  std::string error;
  double seconds = 0;
};

// step/total: the Dockerfile step that started (total 0 when unknown); line: its text.
using ProgressFn = std::function<void(int step, int total, std::string_view line)>;
// Every raw output line of a build, without its newline.
using LogSink = std::function<void(std::string_view line)>;
// A chunk of a streamed body; return false to stop the transfer.
using ChunkFn = std::function<bool(std::string_view chunk)>;
// Fill buf with up to n bytes of a body; return 0 at its end.
using ReadFn = std::function<std::size_t(char* buf, std::size_t n)>;

// A build failure is a BuildResult with ok = false; Unreachable is thrown.
class Builder {
 public:
  virtual ~Builder() = default;
  virtual std::string name() const = 0;
  virtual BuildResult build(const BuildRequest& req, const ProgressFn& progress,
                            const LogSink& log) = 0;
};

// ---- the API client ----------------------------------------------------

class Client {
 public:
  explicit Client(Endpoint endpoint = Endpoint::from_env());
  const Endpoint& endpoint() const { return ep_; }

  void ping();  // throws Unreachable / ApiError
  VersionInfo version();

  // Images. inspect returns nullopt when the engine has no such image.
  std::optional<ImageInfo> inspect_image(const std::string& name);
  bool image_exists(const std::string& name);
  std::vector<HistoryEntry> image_history(const std::string& name);
  void tag_image(const std::string& name, const std::string& repo, const std::string& tag);
  void remove_image(const std::string& name, bool force = false);
  // `docker save` of one image as a tar, streamed chunk by chunk.
  void save_image(const std::string& name, const ChunkFn& sink);
  // A rootfs tar becomes an image repo:tag; returns its id.
  std::string import_image(const ReadFn& tar, const std::string& repo, const std::string& tag);
  std::string import_image(const std::filesystem::path& tar, const std::string& repo,
                           const std::string& tag);

  // POST /build; the failing step and message come back in the result.
  BuildResult build(const BuildRequest& req, const ProgressFn& progress, const LogSink& log);

  // Containers.
  std::string create_container(const ContainerSpec& spec, const std::string& name = "");
  void start_container(const std::string& id);
  // Waits until it stops; after `limit` kills it and reports timed_out.
  WaitResult wait_container(const std::string& id, std::chrono::milliseconds limit);
  void kill_container(const std::string& id);
  Logs container_logs(const std::string& id);  // stdout and stderr, demultiplexed
  void remove_container(const std::string& id);  // forced, with its anonymous volumes

  // registry_auth: the X-Registry-Auth value (base64url JSON); never logged.
  // Transient failures are retried (PushRetry); the result is the last try's.
  PushResult push_image(const std::string& name, const std::string& tag,
                        const std::string& registry_auth, const LogSink& log, const PushRetry& retry = {});

 private:
  Endpoint ep_;
};

// `docker save` of one image into a temporary file in `dir`, removed with
// the object. Image readers seek in it and read layers more than once,
// which the engine's stream cannot do.
class SavedArchive {
 public:
  SavedArchive(Client& client, const std::string& image, const std::filesystem::path& dir);
  ~SavedArchive();
  SavedArchive(const SavedArchive&) = delete;
  SavedArchive& operator=(const SavedArchive&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct BuildxOptions {
  std::string docker = "docker";   // the CLI with the buildx plugin
  std::string builder = "default";  // the docker driver: no BuildKit container image needed
};

// "engine" (POST /build) or "buildx"; throws std::invalid_argument otherwise.
std::unique_ptr<Builder> make_builder(std::string_view name, const Endpoint& ep,
                                      const BuildxOptions& buildx = {});

}  // namespace kiln::engine
