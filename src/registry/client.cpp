// The OCI distribution client: requests with auth (Basic, Bearer tokens),
// retries and redirects; manifests, blobs, retag, copy, referrers, attach.
#include "registry/internal.h"
#include "util/sha256.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <thread>

namespace kiln::registry {

using nlohmann::json;
using detail::Request;
using detail::Response;

namespace {

constexpr const char* kAcceptManifests =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

std::string strip_params(std::string s) {
  if (auto p = s.find(';'); p != std::string::npos) s.resize(p);
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::string pull(const std::string& repo) { return "repository:" + repo + ":pull"; }
std::string push(const std::string& repo) { return "repository:" + repo + ":pull,push"; }

bool retryable(long status) { return status == 429 || (status >= 500 && status != 501 && status != 505); }

// A URL without its query (upload locations carry session state there).
std::string loggable(const std::string& url) { return url.substr(0, url.find('?')); }

}  // namespace

struct Client::Impl {
  Options opts;
  std::string base;  // scheme://host
  detail::Http http;
  bool creds_loaded = false;
  std::optional<Credentials> creds;

  enum class Scheme { Unknown, Basic, Bearer } scheme = Scheme::Unknown;
  std::string realm, service;
  std::map<std::string, std::string> tokens;  // scope set -> token

  explicit Impl(Options o) : opts(std::move(o)), http(opts) {
    if (opts.host.empty()) throw std::invalid_argument("registry: no host given");
    if (opts.host.find("://") != std::string::npos || opts.host.find('/') != std::string::npos)
      throw std::invalid_argument("registry host '" + opts.host + "': give host[:port], no scheme or path");
    // Docker Hub's API lives at registry-1.docker.io; its credentials stay under docker.io's key.
    base = (opts.insecure ? "http://" : "https://") +
           (detail::is_docker_hub(opts.host) ? std::string("registry-1.docker.io") : opts.host);
    if (opts.credentials) {
      creds_loaded = true;
      if (!opts.credentials->empty()) creds = opts.credentials;
    }
  }

  void log(const std::string& line) {
    if (opts.log) opts.log(line);
  }

  const std::optional<Credentials>& credentials() {
    if (!creds_loaded) {
      creds = lookup_credentials(opts.host, opts.docker_config, opts.credential_helper);
      if (creds && creds->empty()) creds.reset();
      creds_loaded = true;
    }
    return creds;
  }

  std::string no_creds_hint() {
    return "no credentials for " + opts.host + " in " + (opts.docker_config / "config.json").string() +
           " (docker login " + opts.host + ")";
  }

  // ---- transport with redirects ----

  Response send(Request req, const std::string& authorization) {
    const std::string origin = detail::url_origin(req.url);
    for (int hop = 0;; ++hop) {
      Request r = req;
      // Credentials go only to the registry's own origin.
      if (!authorization.empty() && detail::url_origin(r.url) == origin)
        r.headers.push_back("Authorization: " + authorization);
      Response resp = http.perform(r);
      log(r.method + " " + loggable(r.url) + " -> " + std::to_string(resp.status));
      bool redirect = resp.status == 301 || resp.status == 302 || resp.status == 303 || resp.status == 307 ||
                      resp.status == 308;
      if (!redirect || resp.header("location").empty()) return resp;
      if (hop >= 5) throw ApiError(static_cast<int>(resp.status), "too many redirects from " + loggable(req.url));
      req.url = detail::resolve_url(r.url, resp.header("location"));
      if (resp.status == 303 || ((resp.status == 301 || resp.status == 302) && req.method == "POST")) {
        req.method = "GET";
        req.body.clear();
        req.has_body = false;
      }
    }
  }

  // ---- auth ----

  std::string basic() {
    return "Basic " + detail::base64_encode(credentials()->username + ":" + credentials()->password);
  }

  std::string fetch_token(const std::string& scope) {
    if (realm.empty()) throw AuthError(opts.host + " asked for a bearer token but named no realm");
    std::string rs = detail::lower(realm);
    if (!rs.starts_with("https://") && !(opts.insecure && rs.starts_with("http://")))
      throw AuthError("token realm " + loggable(realm) + " of " + opts.host + " is not HTTPS");
    std::string q;
    auto add = [&](const char* k, const std::string& v) {
      q += q.empty() ? "" : "&";
      q += std::string(k) + "=" + escape(v);
    };
    if (!service.empty()) add("service", service);
    std::set<std::string> scopes;
    for (std::size_t i = 0; i < scope.size();) {
      std::size_t sp = scope.find(' ', i);
      std::string s = scope.substr(i, sp - i);
      if (!s.empty()) scopes.insert(s);
      i = sp == std::string::npos ? scope.size() : sp + 1;
    }
    for (const auto& s : scopes) add("scope", s);
    const auto& c = credentials();
    Request r;
    if (c && !c->identity_token.empty()) {
      // OAuth2 refresh-token grant (what Docker does with an identity token).
      r.method = "POST";
      r.url = realm;
      add("grant_type", "refresh_token");
      add("client_id", "kiln");
      add("refresh_token", c->identity_token);
      r.body = q;
      r.has_body = true;
      r.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    } else {
      r.url = realm + (realm.find('?') == std::string::npos ? "?" : "&") + q;
      if (c) r.headers.push_back("Authorization: " + basic());
    }
    Response resp = http.perform(r);
    log(r.method + " " + loggable(r.url) + " -> " + std::to_string(resp.status));
    if (resp.status == 401 || resp.status == 403)
      throw AuthError("token service " + loggable(realm) + " refused " + (c ? "the credentials" : "anonymous access") +
                      " for " + opts.host + " (HTTP " + std::to_string(resp.status) + ")" +
                      (c ? "" : ": " + no_creds_hint()));
    if (resp.status != 200)
      throw ApiError(static_cast<int>(resp.status), "token service " + loggable(realm) + ": HTTP " +
                                                        std::to_string(resp.status) + ": " + detail::error_text(resp));
    auto j = json::parse(resp.body, nullptr, false);
    std::string tok;
    if (j.is_object()) {
      if (j.contains("token") && j["token"].is_string()) tok = j["token"].get<std::string>();
      if (tok.empty() && j.contains("access_token") && j["access_token"].is_string())
        tok = j["access_token"].get<std::string>();
    }
    if (tok.empty()) throw AuthError("token service " + loggable(realm) + " returned no token");
    return tok;
  }

  std::string escape(const std::string& s) {
    std::string out;
    static const char* hex = "0123456789ABCDEF";
    for (unsigned char ch : s) {
      if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~')
        out += static_cast<char>(ch);
      else {
        out += '%';
        out += hex[ch >> 4];
        out += hex[ch & 15];
      }
    }
    return out;
  }

  std::string authorization(const std::string& scope) {
    switch (scheme) {
      case Scheme::Basic:
        return credentials() ? basic() : "";
      case Scheme::Bearer: {
        auto it = tokens.find(scope);
        if (it == tokens.end()) it = tokens.emplace(scope, fetch_token(scope)).first;
        return "Bearer " + it->second;
      }
      default:
        return "";
    }
  }

  // One request with authentication: at most two challenge rounds.
  Response send_auth(const Request& req, const std::string& scope) {
    std::string auth = authorization(scope);
    for (int round = 0;; ++round) {
      Response resp = send(req, auth);
      if (resp.status != 401) return resp;
      auto ch = detail::parse_challenge(resp.header("www-authenticate"));
      std::string what = req.method + " " + loggable(req.url);
      if (!ch || round >= 2)
        throw AuthError(opts.host + " refused " + what + " (HTTP 401: " + detail::error_text(resp) + ")" +
                        (credentials() ? "" : ": " + no_creds_hint()));
      if (ch->scheme == "basic") {
        if (!credentials()) throw AuthError(opts.host + " requires authentication: " + no_creds_hint());
        if (scheme == Scheme::Basic)  // we sent them: wrong
          throw AuthError(opts.host + " rejected the credentials for user '" + credentials()->username +
                          "' (HTTP 401 on " + what + ")");
        scheme = Scheme::Basic;
        auth = basic();
      } else if (ch->scheme == "bearer") {
        bool had = scheme == Scheme::Bearer && tokens.count(scope);
        scheme = Scheme::Bearer;
        realm = ch->params["realm"];
        service = ch->params["service"];
        std::string want = scope;
        if (auto s = ch->params.find("scope"); s != ch->params.end() && !s->second.empty())
          want = want.empty() ? s->second : want + " " + s->second;
        if (had && round > 0)
          throw AuthError(opts.host + " refused the token it issued for " + what +
                          (credentials() ? " (the credentials lack access?)" : ": " + no_creds_hint()));
        tokens[scope] = fetch_token(want);
        auth = "Bearer " + tokens[scope];
      } else {
        throw AuthError(opts.host + " asks for unsupported authentication '" + ch->scheme + "'");
      }
    }
  }

  // ---- retries ----

  Response call(Request req, const std::string& scope) {
    using clock = std::chrono::steady_clock;
    auto start = clock::now();
    auto deadline = start + opts.retry_budget;
    auto backoff = opts.backoff;
    for (int attempt = 1;; ++attempt) {
      std::optional<std::chrono::milliseconds> wait;
      try {
        Response resp = send_auth(req, scope);
        if (!retryable(resp.status) || attempt >= opts.max_attempts) return resp;
        wait = detail::parse_retry_after(resp.header("retry-after"));
        if (!wait) wait = backoff;
        if (clock::now() + *wait > deadline) return resp;
        log("retry " + std::to_string(attempt) + ": HTTP " + std::to_string(resp.status) + " from " +
            req.method + " " + loggable(req.url));
      } catch (const detail::BodyInterrupted&) {
        throw;  // the sink already has bytes: a retry would hand them over twice
      } catch (const Unreachable& e) {
        bool timeout = dynamic_cast<const Timeout*>(&e) != nullptr;
        if (attempt >= opts.max_attempts || clock::now() + backoff > deadline) {
          auto secs = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start).count() / 1000.0;
          std::string msg = std::string(e.what()) + " (" + std::to_string(attempt) + " tries in " +
                            std::to_string(secs).substr(0, std::to_string(secs).find('.') + 2) + " s)";
          if (timeout) throw Timeout(msg);
          throw Unreachable(msg);
        }
        log("retry " + std::to_string(attempt) + ": " + e.what());
        wait = backoff;
      }
      std::this_thread::sleep_for(*wait);
      backoff *= 2;
    }
  }

  Response call(const std::string& method, const std::string& path, const std::string& scope,
                std::vector<std::string> headers = {}) {
    Request r;
    r.method = method;
    r.url = path.find("://") == std::string::npos ? base + path : path;
    r.headers = std::move(headers);
    return call(std::move(r), scope);
  }

  [[noreturn]] void fail(const Response& r, const std::string& what) {
    std::string code;
    std::string text = detail::error_text(r, &code);
    std::string msg = what + " on " + opts.host + ": HTTP " + std::to_string(r.status) + (text.empty() ? "" : ": " + text);
    if (r.status == 404) throw NotFound(msg);
    if (r.status == 401 || r.status == 403) throw AuthError(msg);
    throw ApiError(static_cast<int>(r.status), msg, code);
  }
};

Client::Client(Options opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
const Options& Client::options() const { return impl_->opts; }

void Client::ping() {
  Response r = impl_->call("GET", "/v2/", "");
  if (r.status != 200) impl_->fail(r, "GET /v2/");
}

// ---- manifests ----

std::optional<Descriptor> Client::head_manifest(const std::string& repo, const std::string& ref) {
  Response r = impl_->call("HEAD", "/v2/" + repo + "/manifests/" + ref, pull(repo), {kAcceptManifests});
  if (r.status == 404) return std::nullopt;
  if (r.status != 200) impl_->fail(r, "HEAD manifest " + repo + ":" + ref);
  Descriptor d;
  d.media_type = strip_params(r.header("content-type"));
  d.digest = r.header("docker-content-digest");
  d.size = std::atoll(r.header("content-length").c_str());
  if (d.digest.empty()) {  // some registries omit it on HEAD
    Manifest m = get_manifest(repo, ref);
    d.digest = m.digest;
    d.size = static_cast<std::int64_t>(m.bytes.size());
  }
  return d;
}

Manifest Client::get_manifest(const std::string& repo, const std::string& ref) {
  Response r = impl_->call("GET", "/v2/" + repo + "/manifests/" + ref, pull(repo), {kAcceptManifests});
  if (r.status != 200) impl_->fail(r, "manifest " + repo + ":" + ref);
  Manifest m;
  m.media_type = strip_params(r.header("content-type"));
  m.digest = sha256_digest(r.body);
  std::string claimed = r.header("docker-content-digest");
  if (!claimed.empty() && claimed != m.digest)
    throw ApiError(0, "manifest " + repo + ":" + ref + " on " + impl_->opts.host + ": served bytes hash to " +
                          m.digest + ", not the Docker-Content-Digest " + claimed);
  if (ref.starts_with("sha256:") && ref != m.digest)
    throw ApiError(0, "manifest " + repo + "@" + ref + " on " + impl_->opts.host + ": served bytes hash to " + m.digest);
  if (m.media_type.empty() || m.media_type == "application/json") {
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("mediaType") && j["mediaType"].is_string())
      m.media_type = j["mediaType"].get<std::string>();
  }
  m.bytes = std::move(r.body);
  return m;
}

std::string Client::put_manifest(const std::string& repo, const std::string& ref, const std::string& bytes,
                                 const std::string& media_type, bool* subject_accepted) {
  Request req;
  req.method = "PUT";
  req.url = impl_->base + "/v2/" + repo + "/manifests/" + ref;
  req.headers = {"Content-Type: " + media_type};
  req.body = bytes;
  req.has_body = true;
  Response r = impl_->call(std::move(req), push(repo));
  if (r.status != 201 && r.status != 200) impl_->fail(r, "PUT manifest " + repo + ":" + ref);
  std::string digest = sha256_digest(bytes);
  std::string claimed = r.header("docker-content-digest");
  if (!claimed.empty() && claimed != digest)
    throw ApiError(0, "PUT manifest " + repo + ":" + ref + " on " + impl_->opts.host + ": the registry stored " +
                          claimed + " but the bytes hash to " + digest);
  if (subject_accepted) *subject_accepted = !r.header("oci-subject").empty();
  return digest;
}

// ---- blobs ----

bool Client::blob_exists(const std::string& repo, const std::string& digest) {
  Response r = impl_->call("HEAD", "/v2/" + repo + "/blobs/" + digest, pull(repo));
  if (r.status == 200) return true;
  if (r.status == 404) return false;
  impl_->fail(r, "HEAD blob " + repo + "@" + digest);
}

std::string Client::get_blob(const std::string& repo, const std::string& digest) {
  Response r = impl_->call("GET", "/v2/" + repo + "/blobs/" + digest, pull(repo));
  if (r.status != 200) impl_->fail(r, "blob " + repo + "@" + digest);
  if (sha256_digest(r.body) != digest)
    throw ApiError(0, "blob " + repo + "@" + digest + " on " + impl_->opts.host + ": bytes hash to " + sha256_digest(r.body));
  return std::move(r.body);
}

void Client::read_blob(const std::string& repo, const std::string& digest, const BlobSink& sink) {
  const std::string what = "blob " + repo + "@" + digest;
  Request req;
  req.url = impl_->base + "/v2/" + repo + "/blobs/" + digest;
  req.body_sink = sink;
  req.long_transfer = true;
  Response r;
  try {
    r = impl_->call(std::move(req), pull(repo));
  } catch (const detail::BodyInterrupted& e) {
    throw Unreachable(what + ": " + e.what());
  }
  if (r.sink_stopped) return;
  if (r.status != 200) impl_->fail(r, what);
}

std::string Client::push_blob(const std::string& repo, std::string_view bytes) {
  std::string digest = sha256_digest(bytes);
  if (blob_exists(repo, digest)) return digest;
  Request post;
  post.method = "POST";
  post.url = impl_->base + "/v2/" + repo + "/blobs/uploads/";
  post.has_body = true;
  Response r = impl_->call(std::move(post), push(repo));
  if (r.status != 202) impl_->fail(r, "POST blob upload " + repo);
  std::string loc = r.header("location");
  if (loc.empty()) throw ApiError(0, "POST blob upload " + repo + " on " + impl_->opts.host + ": no Location");
  loc = detail::resolve_url(impl_->base + "/v2/" + repo + "/blobs/uploads/", loc);
  Request put;
  put.method = "PUT";
  put.url = loc + (loc.find('?') == std::string::npos ? "?" : "&") + "digest=" + digest;
  put.headers = {"Content-Type: application/octet-stream"};
  put.body = std::string(bytes);
  put.has_body = true;
  Response p = impl_->call(std::move(put), push(repo));
  if (p.status != 201) {
    // A retried PUT may find its session already committed.
    if (blob_exists(repo, digest)) return digest;
    impl_->fail(p, "PUT blob " + repo + "@" + digest);
  }
  return digest;
}

bool Client::mount_blob(const std::string& repo, const std::string& digest, const std::string& from_repo) {
  Request post;
  post.method = "POST";
  post.url = impl_->base + "/v2/" + repo + "/blobs/uploads/?mount=" + digest + "&from=" + from_repo;
  post.has_body = true;
  Response r = impl_->call(std::move(post), push(repo) + " " + pull(from_repo));
  if (r.status == 201) return true;
  if (r.status == 202) {
    if (std::string loc = r.header("location"); !loc.empty()) {
      try {  // cancel the upload it opened instead; best effort
        impl_->call("DELETE", detail::resolve_url(impl_->base + "/v2/", loc), push(repo));
      } catch (const std::exception&) {
      }
    }
    return false;
  }
  impl_->fail(r, "mount " + digest + " from " + from_repo + " into " + repo);
}

// ---- retag and copy ----

std::string Client::retag(const std::string& repo, const std::string& from_ref, const std::string& new_tag) {
  Manifest m = get_manifest(repo, from_ref);
  return put_manifest(repo, new_tag, m.bytes, m.media_type);
}

std::string Client::copy(const std::string& src, const std::string& ref, const std::string& dst, const std::string& tag) {
  Manifest m = get_manifest(src, ref);
  auto j = json::parse(m.bytes, nullptr, false);
  if (!j.is_object()) throw ApiError(0, "manifest " + src + ":" + ref + " is not a JSON object");
  if (j.contains("manifests") && j["manifests"].is_array()) {
    for (const auto& child : j["manifests"]) copy(src, child.at("digest").get<std::string>(), dst, child.at("digest").get<std::string>());
  } else {
    std::vector<json> blobs;
    if (j.contains("config") && j["config"].is_object()) blobs.push_back(j["config"]);
    if (j.contains("layers") && j["layers"].is_array())
      for (const auto& l : j["layers"]) blobs.push_back(l);
    for (const auto& b : blobs) {
      std::string d = b.value("digest", std::string());
      if (d.empty() || (b.contains("urls") && !blob_exists(src, d))) continue;  // foreign layers stay foreign
      if (blob_exists(dst, d)) continue;
      if (!mount_blob(dst, d, src)) push_blob(dst, get_blob(src, d));
    }
  }
  return put_manifest(dst, tag, m.bytes, m.media_type);
}

// ---- referrers and attach ----

namespace {
Descriptor descriptor_from(const json& d) {
  Descriptor out;
  out.media_type = d.value("mediaType", std::string());
  out.digest = d.value("digest", std::string());
  out.size = d.value("size", std::int64_t{0});
  out.artifact_type = d.value("artifactType", std::string());
  if (d.contains("annotations") && d["annotations"].is_object())
    for (auto& [k, v] : d["annotations"].items())
      if (v.is_string()) out.annotations[k] = v.get<std::string>();
  return out;
}
}  // namespace

std::optional<std::vector<Descriptor>> Client::referrers(const std::string& repo, const std::string& subject,
                                                         const std::string& artifact_type) {
  std::string path = "/v2/" + repo + "/referrers/" + subject;
  if (!artifact_type.empty()) path += "?artifactType=" + impl_->escape(artifact_type);
  Response r = impl_->call("GET", path, pull(repo), {"Accept: application/vnd.oci.image.index.v1+json"});
  if (r.status == 404) return std::nullopt;  // no referrers API
  if (r.status != 200) impl_->fail(r, "referrers of " + repo + "@" + subject);
  auto j = json::parse(r.body, nullptr, false);
  if (!j.is_object()) throw ApiError(0, "referrers of " + repo + "@" + subject + ": not a JSON index");
  std::vector<Descriptor> out;
  if (j.contains("manifests") && j["manifests"].is_array())
    for (const auto& d : j["manifests"]) {
      Descriptor desc = descriptor_from(d);
      if (artifact_type.empty() || desc.artifact_type == artifact_type) out.push_back(std::move(desc));
    }
  return out;
}

Attached Client::attach(const std::string& repo, const std::string& subject, const std::string& artifact_type,
                        const std::string& doc, const std::string& layer_media_type,
                        const std::map<std::string, std::string>& annotations, std::string_view tag_suffix) {
  auto subj = head_manifest(repo, subject);
  if (!subj) throw NotFound("attach to " + repo + "@" + subject + " on " + impl_->opts.host + ": no such manifest");
  push_blob(repo, "{}");
  std::string layer = push_blob(repo, doc);
  json m = {
      {"schemaVersion", 2},
      {"mediaType", media::oci_manifest},
      {"artifactType", artifact_type},
      {"config", {{"mediaType", media::oci_empty}, {"digest", media::empty_digest}, {"size", 2}}},
      {"layers", json::array({{{"mediaType", layer_media_type}, {"digest", layer}, {"size", doc.size()}}})},
      {"subject", {{"mediaType", subj->media_type}, {"digest", subject}, {"size", subj->size}}},
  };
  if (!annotations.empty()) m["annotations"] = annotations;
  std::string bytes = m.dump();
  Attached out;
  bool accepted = false;
  out.digest = put_manifest(repo, sha256_digest(bytes), bytes, media::oci_manifest, &accepted);
  if (accepted) {
    out.mode = AttachMode::Referrers;
    return out;
  }
  out.mode = AttachMode::FallbackTag;
  out.tag = fallback_tag(subject, tag_suffix);
  put_manifest(repo, out.tag, bytes, media::oci_manifest);
  impl_->log("attach: " + impl_->opts.host + " ignored subject; tagged " + repo + ":" + out.tag);
  return out;
}

std::vector<Descriptor> Client::attached(const std::string& repo, const std::string& subject,
                                         const std::string& artifact_type, std::string_view tag_suffix) {
  if (auto refs = referrers(repo, subject, artifact_type); refs && !refs->empty()) return *refs;
  std::string tag = fallback_tag(subject, tag_suffix);
  if (!head_manifest(repo, tag)) return {};
  Manifest m = get_manifest(repo, tag);
  auto j = json::parse(m.bytes, nullptr, false);
  if (!j.is_object() || !j.contains("subject") || j["subject"].value("digest", std::string()) != subject) return {};
  if (!artifact_type.empty() && j.value("artifactType", std::string()) != artifact_type) return {};
  Descriptor d;
  d.media_type = m.media_type;
  d.digest = m.digest;
  d.size = static_cast<std::int64_t>(m.bytes.size());
  d.artifact_type = j.value("artifactType", std::string());
  if (j.contains("annotations") && j["annotations"].is_object())
    for (auto& [k, v] : j["annotations"].items())
      if (v.is_string()) d.annotations[k] = v.get<std::string>();
  return {d};
}

// ---- tags ----

std::vector<std::string> Client::tags(const std::string& repo) {
  std::vector<std::string> out;
  std::string path = "/v2/" + repo + "/tags/list?n=1000";
  for (int page = 0; page < 10000 && !path.empty(); ++page) {
    Response r = impl_->call("GET", path, pull(repo));
    if (r.status != 200) impl_->fail(r, "tags of " + repo);
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("tags") && j["tags"].is_array())
      for (const auto& t : j["tags"])
        if (t.is_string()) out.push_back(t.get<std::string>());
    std::string next = detail::parse_link_next(r.header("link"));
    path = next.empty() ? "" : detail::resolve_url(impl_->base + "/v2/", next);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {

// The tag sorting just before `tag` among all valid tags ([A-Za-z0-9_.-],
// at most 128 characters; byte order, as registries sort them), for a tag
// list's `last` (exclusive): the answer then starts at `tag` if it exists.
std::string tag_before(const std::string& tag) {
  static const std::string alphabet = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
  if (tag.empty() || tag.size() > 128) return "";
  std::string head = tag.substr(0, tag.size() - 1);
  auto pos = alphabet.find(tag.back());
  if (pos == std::string::npos || pos == 0) return head;  // still a lower bound
  return head + alphabet[pos - 1] + std::string(128 - tag.size(), 'z');
}

}  // namespace

bool Client::tag_listed(const std::string& repo, const std::string& tag) {
  // One small page where the registry honours n and last; a registry that
  // ignores them is read on, page by page, until the tag or a later one shows.
  std::string path = "/v2/" + repo + "/tags/list?n=10&last=" + tag_before(tag);
  for (int page = 0; page < 10000 && !path.empty(); ++page) {
    Response r = impl_->call("GET", path, pull(repo));
    if (r.status == 404) return false;  // no such repository
    if (r.status != 200) impl_->fail(r, "tags of " + repo);
    auto j = json::parse(r.body, nullptr, false);
    std::vector<std::string> got;
    if (j.is_object() && j.contains("tags") && j["tags"].is_array())
      for (const auto& t : j["tags"])
        if (t.is_string()) got.push_back(t.get<std::string>());
    if (std::find(got.begin(), got.end(), tag) != got.end()) return true;
    if (std::is_sorted(got.begin(), got.end()) && !got.empty() && got.back() > tag) return false;
    std::string next = detail::parse_link_next(r.header("link"));
    path = next.empty() ? "" : detail::resolve_url(impl_->base + "/v2/", next);
  }
  return false;
}

std::optional<Descriptor> Client::confirmed_tag(const std::string& repo, const std::string& tag) {
  if (auto d = head_manifest(repo, tag)) return d;
  if (!tag_listed(repo, tag)) return std::nullopt;
  impl_->log("HEAD " + repo + ":" + tag + " said 404 but the tag list has it; asking again");
  if (auto d = head_manifest(repo, tag)) return d;
  throw ApiError(0, "tag " + repo + ":" + tag + " on " + impl_->opts.host +
                        ": the tag list has it but its manifest answers 404; not writing over a tag the registry "
                        "cannot show");
}

}  // namespace kiln::registry
