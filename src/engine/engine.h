// The build engine: a Docker Engine API client over its unix socket, TCP+TLS or ssh (also
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

// The socket is missing or refuses, the host is unreachable, TLS or ssh
// refused kiln: an environment problem (callers exit 2). One line:
// "cannot reach the engine at URL: <what went wrong>; <what to do>".
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

// How a tcp:// engine is secured, read as the Docker CLI reads it ("Protect
// the Docker daemon socket"): DOCKER_TLS_VERIFY turns TLS on, with the
// server's certificate and host name verified; DOCKER_CERT_PATH is the
// directory holding ca.pem, cert.pem and key.pem (default ~/.docker). A
// runner (matrix or kiln.toml) may name its own directory or each file.
struct TlsSettings {
  std::optional<bool> verify;  // tls_verify / DOCKER_TLS_VERIFY; unset: see Endpoint::parse
  std::string cert_path;       // cert_path / DOCKER_CERT_PATH; "" = ~/.docker
  std::string ca, cert, key;   // files; each replaces cert_path's
  // DOCKER_TLS_VERIFY (any non-empty value but "0"/"false") and DOCKER_CERT_PATH.
  static TlsSettings from_env();
};

// Where the engine listens, and how to get there (docs/engine.md, "Remote
// engines"): a unix socket; tcp://HOST:PORT, plain or TLS; ssh://[USER@]HOST[:PORT],
// reached through a unix socket forwarded by `ssh -L` (kept open while kiln runs).
struct Endpoint {
  enum class Transport { unix_socket, tcp, ssh };
  // unix: the socket. ssh: the remote engine's socket, forwarded.
  std::string socket_path = "/var/run/docker.sock";
  Transport transport = Transport::unix_socket;
  std::string host;  // tcp, ssh ("::1" without brackets)
  int port = 0;      // tcp: always set (2375 plain, 2376 TLS when unwritten); ssh: 0 = ssh's default
  std::string user;  // ssh: "" = ssh's default (~/.ssh/config, the login name)
  // tcp over TLS: the server is verified against `ca` ("" = the system's
  // CAs) with its host name checked; cert/key ("" = none) are the client's.
  bool tls = false;
  std::string ca, cert, key;

  // The URL as a user would write it: unix:///path, tcp://HOST:PORT,
  // ssh://USER@HOST:PORT (the remote socket appended when not the default).
  std::string uri() const;
  // "unix:///path/to.sock", "tcp://HOST[:PORT]", "ssh://[USER@]HOST[:PORT][/remote.sock]".
  // A tcp engine speaks TLS when tls.verify says so, else when it names a
  // ca/cert/key or its port is 2376 (Docker's TLS port). Files named in
  // `tls` must exist; cert_path's are used where they exist. Anything
  // malformed (npipe://, fd://, a unix URL without an absolute path, a bad
  // port) throws std::invalid_argument naming the URL.
  static Endpoint parse(std::string_view url, const TlsSettings& tls = {});
  // DOCKER_HOST (with TlsSettings::from_env()) through parse(), else /var/run/docker.sock.
  static Endpoint from_env();
};

// kiln's environment with the docker CLI pointed at `ep` (buildx, docker
// context): DOCKER_HOST, and for TLS DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH
// (a directory made under `scratch` with links named as the CLI wants them);
// an ssh engine is handed over as its forwarded socket (opened if needed).
// Any DOCKER_HOST, DOCKER_CONTEXT, DOCKER_TLS* or DOCKER_CERT_PATH of kiln's own is dropped.
std::vector<std::string> docker_cli_env(const Endpoint& ep, const std::filesystem::path& scratch);

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
  // "127.0.0.1:5000/kiln/x@sha256:..." when the builder pushed the image to
  // a registry (BuildxOptions::push_repository) instead of loading it.
  std::string pushed;
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

  // POST /images/create?fromImage=REPO&tag=REF: the engine pulls REPO:REF,
  // REF a tag or a digest ("sha256:..."). registry_auth as for push_image.
  // Throws ApiError with the engine's message (it answers 200 and reports a
  // failed pull in the stream).
  void pull_image(const std::string& repo, const std::string& ref, const std::string& registry_auth,
                  const LogSink& log = {});

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
  // The Docker context the CLI runs in (`docker --context CTX buildx ...`):
  // buildx refuses to use the docker driver of another context otherwise.
  // "": the engine's endpoint through DOCKER_HOST, as for "default".
  std::string context;
  // Not empty: the builder is not this engine, so the result is pushed to
  // this repository ("127.0.0.1:5000/kiln/offline") instead of --load-ed
  // back. By digest (push-by-digest=true, no tag) unless push_tag is set:
  // the docker driver cannot push by digest and pushes under that
  // kiln-owned tag instead. BuildResult::pushed says where it went.
  std::string push_repository;
  std::string push_tag;
};

// A named builder as `docker buildx inspect NAME` describes it.
struct BuildxBuilderInfo {
  std::string name;
  std::string driver;    // "docker", "docker-container", "remote", "kubernetes", ...
  std::string endpoint;  // its first node's: a context name, or a URL (remote)
  // The docker driver's engine (the host of its context), "" for other
  // drivers or when the context names none.
  std::string docker_host;
};

// The text `docker buildx inspect` prints; nullopt without a Driver line.
std::optional<BuildxBuilderInfo> parse_buildx_inspect(std::string_view text);

// What buildx wrote into --metadata-file.
struct BuildxMetadata {
  std::string digest;         // containerimage.digest: the image manifest's
  std::string config_digest;  // containerimage.config.digest: the image id
  std::string image_name;     // image.name, as the exporter named it
};
// nullopt: not a JSON object.
std::optional<BuildxMetadata> parse_buildx_metadata(std::string_view json);

// Asks `docker buildx inspect NAME` (and, for the docker driver, `docker
// context inspect` for its engine). Throws std::invalid_argument naming the
// builder and `docker buildx ls` when buildx knows no such builder, and
// std::runtime_error when the CLI cannot be run.
BuildxBuilderInfo inspect_buildx_builder(const std::string& name, const std::string& docker = "docker");

// "engine" (POST /build) or "buildx"; throws std::invalid_argument otherwise.
std::unique_ptr<Builder> make_builder(std::string_view name, const Endpoint& ep,
                                      const BuildxOptions& buildx = {});

}  // namespace kiln::engine
