// The registry: an OCI distribution API client (libcurl) for what promote
// needs — read a manifest's exact bytes, retag without moving blobs, copy
// across repositories by mounting, upload small blobs, attach a record to an
// image (referrers, or the `sha256-<hex>.kiln` fallback tag), list tags —
// and for `kiln audit docker://…` (blobs streamed); Docker-config
// credentials (auths, credHelpers, credsStore) for it and for the engine's
// X-Registry-Auth. Calls, auth flows, retries: docs/registry.md.
#pragma once
#include "util/env_limits.h"


#include <chrono>
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

namespace kiln::registry {

// ---- errors (what() never holds a credential) --------------------------

// No answer: connection refused, DNS, TLS, or timeouts after every retry
// (callers exit 2). what(): "cannot reach the registry at HOST: <why>".
struct Unreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Unreachable because the registry was too slow (each try hit the timeout).
struct Timeout : Unreachable {
  using Unreachable::Unreachable;
};
// 401/403 after presenting what we have, a token endpoint refusing, or a
// credential helper failing.
struct AuthError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// 404: no such repository, manifest, blob or tag.
struct NotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Any other HTTP error (after retries for 5xx/429), or a reply that breaks
// the protocol (e.g. a digest that does not match the bytes). status 0: the
// latter. code: the registry's first error code ("MANIFEST_INVALID"), if any.
struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& what, std::string code = {})
      : std::runtime_error(what), status(status), code(std::move(code)) {}
  int status;
  std::string code;
};

// ---- credentials -------------------------------------------------------

// A username/password pair, or an identity (refresh) token. Never printed.
struct Credentials {
  std::string username, password;
  std::string identity_token;  // a helper's "<token>" user; OAuth2 refresh token
  bool empty() const { return username.empty() && password.empty() && identity_token.empty(); }
};

// $DOCKER_CONFIG, else $HOME/.docker.
std::filesystem::path docker_config_dir();

// Credentials for a registry host ("127.0.0.1:5000", "ghcr.io", "docker.io")
// from <config_dir>/config.json: credHelpers[host], then credsStore, then
// auths[host] (auth = base64 "user:pass", or identitytoken). Helpers run as
// `docker-credential-NAME get` (argument vector, host on stdin). nullopt: none
// configured. Throws AuthError for an unreadable config or a failing helper.
// `helper` (kiln's config, docs/config.md): docker-credential-NAME is asked
// first; when it knows nothing for the host, the Docker config decides.
std::optional<Credentials> lookup_credentials(std::string_view host,
                                              const std::filesystem::path& config_dir = docker_config_dir(),
                                              const std::string& helper = {});

// The engine's X-Registry-Auth value for POST /images/{name}/push: base64url
// of {"username","password","serveraddress"} (or {"identitytoken",...});
// "e30=" ({}) without credentials.
std::string engine_auth(const std::optional<Credentials>& creds, std::string_view server);

// ---- references --------------------------------------------------------

// "127.0.0.1:5000/kiln/torch:2.6-cuda12.4" or "...@sha256:<hex>". The first
// component is a host when it has '.', ':' or is "localhost"; else docker.io
// (and "library/" for one-component names).
struct Reference {
  std::string host, repo, tag, digest;
  std::string ref() const { return digest.empty() ? tag : digest; }  // tag when both
  std::string str() const;
};
Reference parse_reference(std::string_view s);  // throws std::invalid_argument

// "localhost", "127.0.0.1:5000", "[::1]:5000": a registry on this machine,
// which Docker speaks plain HTTP to without being told.
bool is_loopback_host(std::string_view host);

// ---- plain data --------------------------------------------------------

namespace media {
inline constexpr const char* oci_index = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* oci_manifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* oci_empty = "application/vnd.oci.empty.v1+json";
inline constexpr const char* empty_digest =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";  // of "{}"
}  // namespace media

struct Descriptor {
  std::string media_type, digest;
  std::int64_t size = 0;
  std::string artifact_type;
  std::map<std::string, std::string> annotations;
};

struct Manifest {
  std::string media_type;  // the Content-Type it was served with
  std::string digest;      // "sha256:<hex>" of bytes (checked against Docker-Content-Digest)
  std::string bytes;       // exactly as received: re-serialising would change the digest
};

enum class AttachMode {
  Referrers,    // the registry took `subject` (OCI-Subject in the reply)
  FallbackTag,  // it did not: the artifact is also tagged sha256-<subject hex>.<suffix>
};

struct Attached {
  std::string digest;  // of the artifact manifest
  AttachMode mode = AttachMode::Referrers;
  std::string tag;  // the fallback tag, when mode == FallbackTag
};

// "sha256-<hex>.<suffix>" for subject "sha256:<hex>": one tag per kind of
// attachment ("kiln" the verification record, "sbom", "provenance"), so
// several attach to one image on a registry without referrers.
std::string fallback_tag(std::string_view subject_digest, std::string_view suffix = "kiln");

// ---- the client --------------------------------------------------------

// One line per request ("GET http://127.0.0.1:5000/v2/x/manifests/1 -> 200")
// and per retry; never a header value or a body.
using LogFn = std::function<void(std::string_view line)>;

struct Options {
  std::string host;       // "127.0.0.1:5000", "registry.example.com"
  bool insecure = false;  // plain HTTP (a local registry); TLS verified otherwise
  std::string ca_file;    // extra CA bundle for TLS; empty: the system's
  // nullopt: lookup_credentials(host) at construction. An empty value: anonymous.
  std::optional<Credentials> credentials;
  std::filesystem::path docker_config = docker_config_dir();
  std::string credential_helper;  // asked before the Docker config (kiln's config, [registry])
  // Retries on connection errors, timeouts, 5xx and 429: at most
  // max_attempts tries per request, backoff doubling from `backoff` (or the
  // server's Retry-After), all within retry_budget.
  int max_attempts = 4;
  std::chrono::milliseconds backoff{250};
  std::chrono::milliseconds retry_budget{60'000};
  // Time limits (docs/registry.md, "Retries and timeouts"); the defaults
  // come from the environment when set there (seconds; 0: no limit).
  std::chrono::milliseconds connect_timeout =
      env_seconds("KILN_REGISTRY_CONNECT_TIMEOUT", std::chrono::milliseconds(10'000));
  // One request, start to end.
  std::chrono::milliseconds timeout = env_seconds("KILN_REGISTRY_TIMEOUT", std::chrono::milliseconds(120'000));
  // read_blob has no total timeout (a layer of several GB takes long); it
  // gives up when fewer than 1 KiB/s arrive for this long.
  std::chrono::seconds stall_timeout = std::chrono::ceil<std::chrono::seconds>(
      env_seconds("KILN_REGISTRY_IDLE_TIMEOUT", std::chrono::milliseconds(60'000)));
  LogFn log;
};

// Not thread-safe: one Client per thread (it keeps its connection and tokens).
class Client {
 public:
  explicit Client(Options opts);
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  const Options& options() const;

  // GET /v2/: reachable and, with credentials, authenticated.
  void ping();

  // HEAD: nullopt when absent (no NotFound). Descriptor of the manifest.
  std::optional<Descriptor> head_manifest(const std::string& repo, const std::string& ref);
  Manifest get_manifest(const std::string& repo, const std::string& ref);
  // PUT the exact bytes with that content type (201); returns the digest,
  // checked against sha256(bytes) and the registry's Docker-Content-Digest.
  // ref: a tag, or the digest itself. subject_accepted (if given) tells
  // whether the reply carried OCI-Subject.
  std::string put_manifest(const std::string& repo, const std::string& ref, const std::string& bytes,
                           const std::string& media_type, bool* subject_accepted = nullptr);

  bool blob_exists(const std::string& repo, const std::string& digest);
  std::string get_blob(const std::string& repo, const std::string& digest);  // small blobs only
  // GET the blob and hand its bytes to `sink` as they arrive, never holding
  // it whole (layers). sink returns false to stop early (read_blob then
  // returns normally). Auth, redirects (credentials only to the registry's
  // own origin) and retries as for every call, until the first byte reached
  // the sink; a transfer that breaks after that throws Unreachable naming
  // the blob. No digest check here: the reader hashes what it streams.
  using BlobSink = std::function<bool(std::string_view bytes)>;
  void read_blob(const std::string& repo, const std::string& digest, const BlobSink& sink);
  // Monolithic upload (POST uploads + PUT ?digest=); skipped when present.
  // Returns "sha256:<hex>".
  std::string push_blob(const std::string& repo, std::string_view bytes);
  // POST uploads ?mount=&from=: true when mounted (201), false when the
  // registry declined (202; the opened upload is cancelled).
  bool mount_blob(const std::string& repo, const std::string& digest, const std::string& from_repo);

  // Same repository: GET + PUT of the same bytes under new_tag. No blob
  // requests at all. Returns the digest (unchanged by construction).
  std::string retag(const std::string& repo, const std::string& from_ref, const std::string& new_tag);
  // Another repository of this registry: blobs mounted (uploaded through
  // this client when a mount is declined), child manifests of an index put
  // by digest, then the manifest's exact bytes under `tag`. Returns the digest.
  std::string copy(const std::string& src_repo, const std::string& ref, const std::string& dst_repo,
                   const std::string& tag);

  // GET /v2/<repo>/referrers/<digest>[?artifactType=]: nullopt when the
  // registry has no referrers API (404 there).
  std::optional<std::vector<Descriptor>> referrers(const std::string& repo, const std::string& subject_digest,
                                                   const std::string& artifact_type = {});

  // Attach a small JSON document to an image: the blob, the empty config,
  // and an OCI manifest with artifactType and subject; falls back to the
  // tag fallback_tag(subject, tag_suffix) when the registry ignores subject.
  Attached attach(const std::string& repo, const std::string& subject_digest, const std::string& artifact_type,
                  const std::string& json, const std::string& layer_media_type = "application/json",
                  const std::map<std::string, std::string>& annotations = {}, std::string_view tag_suffix = "kiln");
  // What attach() left for this subject: referrers of that artifact type,
  // else the fallback tag's manifest (if its subject and artifact type
  // match). Empty: none.
  std::vector<Descriptor> attached(const std::string& repo, const std::string& subject_digest,
                                   const std::string& artifact_type, std::string_view tag_suffix = "kiln");

  // GET /v2/<repo>/tags/list, following Link pagination.
  std::vector<std::string> tags(const std::string& repo);

  // What `tag` names, for a caller about to write it. A HEAD that finds
  // nothing is not believed alone (an eventually consistent registry, or a
  // proxy, may answer one wrong 404): the tag list must agree. nullopt only
  // when both say absent. A tag the list has whose manifest answers 404 on a
  // second HEAD throws ApiError (status 0): the registry contradicts itself,
  // and a writer must not guess.
  std::optional<Descriptor> confirmed_tag(const std::string& repo, const std::string& tag);
  // Whether the tag list has `tag`: GET tags/list?n=10&last=<the tag just
  // before it>, so a large repository costs one small page (following Link
  // where a registry ignores n or last). An unknown repository has none.
  bool tag_listed(const std::string& repo, const std::string& tag);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::registry
