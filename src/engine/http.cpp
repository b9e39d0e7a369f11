// HTTP to the engine with libcurl: over its unix socket, TCP (plain or TLS)
// or an ssh-forwarded socket. One easy handle per request: requests are few
// and long (builds, waits), so reuse buys nothing.
#include "engine/internal.h"

#include <fmt/format.h>
#include "util/env_limits.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <mutex>

namespace kiln::engine::detail {
namespace {

// The API version every call names: 1.41 is Docker 20.10's, and Podman's
// compat service accepts it too (docs/engine.md).
constexpr const char* kApi = "/v1.41";

std::string base_url(const Endpoint& ep) {
  if (ep.transport != Endpoint::Transport::tcp) return std::string("http://localhost") + kApi;
  const std::string host = ep.host.find(':') == std::string::npos ? ep.host : "[" + ep.host + "]";
  return (ep.tls ? "https://" : "http://") + host + ":" + std::to_string(ep.port) + kApi;
}

// TLS sessions resumed across requests: one easy handle per request would
// otherwise pay a full handshake (with the client certificate) for every
// call. Only sessions are shared, not connections: a stale kept-alive
// connection under a streamed build body could not be retried.
CURLSH* tls_sessions() {
  static std::mutex locks[CURL_LOCK_DATA_LAST];
  static CURLSH* share = [] {
    CURLSH* s = curl_share_init();
    curl_share_setopt(s, CURLSHOPT_LOCKFUNC, +[](CURL*, curl_lock_data d, curl_lock_access, void*) { locks[d].lock(); });
    curl_share_setopt(s, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data d, void*) { locks[d].unlock(); });
    curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return s;
  }();
  return share;
}

// Where the bytes go. `socket` keeps an ssh tunnel's local path alive for
// the request. TLS: the peer verified against ca (else the system's CAs)
// with its host name checked, as the Docker CLI's --tlsverify; the client's
// certificate and key as files (never their contents in memory or argv).
void set_transport(CURL* curl, const Endpoint& ep, std::string& socket) {
  switch (ep.transport) {
    case Endpoint::Transport::unix_socket:
      socket = ep.socket_path;
      break;
    case Endpoint::Transport::ssh:
      socket = local_socket(ep);
      break;
    case Endpoint::Transport::tcp:
      if (!ep.tls) return;
      curl_easy_setopt(curl, CURLOPT_SHARE, tls_sessions());
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
      if (!ep.ca.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ep.ca.c_str());
      if (!ep.cert.empty()) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, ep.cert.c_str());
        curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(curl, CURLOPT_SSLKEY, ep.key.c_str());
        curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
      }
      return;
  }
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket.c_str());
}

bool has(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

bool is_ip(const std::string& host) {
  return host.find(':') != std::string::npos || host.find_first_not_of("0123456789.") == std::string::npos;
}

std::string ca_name(const Endpoint& ep) {
  return ep.ca.empty() ? "the system's CA store (no ca.pem in DOCKER_CERT_PATH or ~/.docker, no ca given)" : ep.ca;
}

// curl's reason for a failed request, with what to do about it where the
// cause is known: one line, for a user who set DOCKER_HOST or a runner.
std::string explain_failure(const Endpoint& ep, CURLcode rc, const std::string& why) {
  if (ep.transport == Endpoint::Transport::ssh) {
    if (std::string t = ssh_trouble(ep); !t.empty()) return t;
    return why;
  }
  if (ep.transport != Endpoint::Transport::tcp) return why;
  const std::string where = ep.host + ":" + std::to_string(ep.port);
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
      return why + "; is dockerd running and listening on " + where + " (dockerd -H tcp://" + where + ")?";
    case CURLE_COULDNT_RESOLVE_HOST:
      return why + "; check the host name";
    case CURLE_PEER_FAILED_VERIFICATION:
      if (has(why, "subject name") || has(why, "does not match") || has(why, "hostname"))
        return "certificate verify failed: the engine's certificate does not name " + ep.host + " (" + why +
               "); its subjectAltName must list " + (is_ip(ep.host) ? "IP:" : "DNS:") + ep.host;
      return "certificate verify failed: the engine's certificate is not signed by the CA in " + ca_name(ep) + " (" +
             why + "); set DOCKER_CERT_PATH (or the runner's ca / cert_path) to the CA that signed the daemon's --tlscert";
    case CURLE_SSL_CACERT_BADFILE:
      return "cannot read the CA file " + ca_name(ep) + " (" + why + ")";
    case CURLE_SSL_CERTPROBLEM:
      return "cannot use the client certificate " + ep.cert + " and key " + ep.key + " (" + why + ")";
    default:
      break;
  }
  if (ep.tls && has(why, "alert")) {  // the daemon refused kiln's side of the handshake
    if (ep.cert.empty())
      return "the engine requires a client certificate and kiln has none (" + why +
             "); put cert.pem and key.pem in DOCKER_CERT_PATH (or ~/.docker), or set the runner's cert and key";
    return "the engine refused the client certificate " + ep.cert + " (" + why +
           "); it must be signed by the CA the daemon trusts (dockerd --tlscacert)";
  }
  if (ep.tls && has(why, "wrong version number"))
    return "the engine does not speak TLS on " + where + " (" + why +
           "); use its TLS port, or unset DOCKER_TLS_VERIFY / the runner's tls_verify for a plain engine";
  return why;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The three limits of docs/engine.md ("Time limits"), read per request so a
// test or a wrapper script can set them in the environment.
struct Limits {
  milliseconds connect, call, idle;
};

Limits limits_from_env() {
  using namespace std::chrono_literals;
  return {env_seconds("KILN_ENGINE_CONNECT_TIMEOUT", 10s), env_seconds("KILN_ENGINE_TIMEOUT", 60s),
          env_seconds("KILN_ENGINE_IDLE_TIMEOUT", 900s)};
}

// What a request is, for its time limits.
enum class Shape {
  call,    // request and answer: done within the call limit
  stream,  // a body either way (build, push, save, import, logs): no total
           // limit, alive as long as bytes move
  wait,    // silent by design until the caller's timeout_ms (container wait)
};

Shape shape_of(const HttpRequest& req) {
  if (req.timeout_ms > 0) return Shape::wait;
  if (req.on_data || req.body_reader) return Shape::stream;
  return Shape::call;
}

struct Transfer {
  CURL* curl = nullptr;
  const HttpRequest* req = nullptr;
  HttpResponse* resp = nullptr;
  bool stopped_by_sink = false;
  std::exception_ptr error;  // exceptions must not cross libcurl's C frames
  // Idle detection: body bytes moved either way, and when they last did.
  milliseconds idle{0};  // 0: not watched
  curl_off_t moved = 0;
  Clock::time_point last_move = Clock::now();
  bool went_idle = false;
};

// libcurl calls this at least once a second, bytes or not: a stream that
// moves no byte for `idle` is given up (it returns non-zero: abort).
int on_progress(void* user, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(user);
  const auto now = Clock::now();
  if (dlnow + ulnow != t->moved) {
    t->moved = dlnow + ulnow;
    t->last_move = now;
    return 0;
  }
  if (t->idle.count() > 0 && now - t->last_move >= t->idle) {
    t->went_idle = true;
    return 1;
  }
  return 0;
}

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (t->resp->status == 0) curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->resp->status);
  // Error bodies are small JSON messages: always collect them for the caller.
  if (!t->req->on_data || t->resp->status >= 400) {
    t->resp->body.append(data, len);
    return len;
  }
  try {
    if (t->req->on_data(std::string_view(data, len))) return len;
    t->stopped_by_sink = true;
  } catch (...) {
    t->error = std::current_exception();
  }
  return 0;  // aborts the transfer
}

size_t on_read(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  try {
    return t->req->body_reader(buf, size * n);
  } catch (...) {
    t->error = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
}

struct Handle {
  CURL* curl = curl_easy_init();
  curl_slist* headers = nullptr;
  ~Handle() {
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
  }
};

void set_body(Handle& h, const HttpRequest& req, Transfer& t) {
  if (req.body_reader) {
    // Size unknown up front (a streamed tar): chunked transfer encoding.
    h.headers = curl_slist_append(h.headers, "Transfer-Encoding: chunked");
    curl_easy_setopt(h.curl, CURLOPT_POST, 1L);
    curl_easy_setopt(h.curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h.curl, CURLOPT_READDATA, &t);
  } else if (req.method == "POST") {
    curl_easy_setopt(h.curl, CURLOPT_POST, 1L);
    curl_easy_setopt(h.curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.body.size()));
    curl_easy_setopt(h.curl, CURLOPT_POSTFIELDS, req.body.c_str());
  } else if (req.method != "GET") {
    curl_easy_setopt(h.curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
}

}  // namespace

std::string url_escape(std::string_view s) {
  global_init();
  Handle h;
  char* e = curl_easy_escape(h.curl, s.data(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

std::string HttpResponse::message() const {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    return j["message"].get<std::string>();
  return body;
}

namespace {

// "GET /_ping": the request as a message names it, without its query string
// (a build's carries build args and labels).
std::string request_name(const HttpRequest& req) {
  return req.method + " " + req.path.substr(0, req.path.find('?'));
}

// A request that ran out of time: engine::Timeout naming the endpoint, the
// request, the limit and the variable that sets it.
[[noreturn]] void throw_timeout(const Endpoint& ep, const HttpRequest& req, const Transfer& t, const Limits& lim,
                                bool connected) {
  const std::string who = "engine " + ep.uri();
  if (!connected)
    throw Timeout(who + " did not accept a connection within " + describe_seconds(lim.connect) +
                  " (KILN_ENGINE_CONNECT_TIMEOUT)");
  if (t.went_idle)
    throw Timeout(who + " sent nothing for " + describe_seconds(t.idle) + " during " + request_name(req) +
                  " (KILN_ENGINE_IDLE_TIMEOUT)");
  throw Timeout(who + " did not answer " + request_name(req) + " within " + describe_seconds(lim.call) +
                " (KILN_ENGINE_TIMEOUT)");
}

}  // namespace

HttpResponse http(const Endpoint& ep, const HttpRequest& req) {
  global_init();
  const Limits lim = limits_from_env();
  const Shape shape = shape_of(req);
  Handle h;
  HttpResponse resp;
  Transfer t{h.curl, &req, &resp};
  std::string url = base_url(ep) + req.path, socket;
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h.curl, CURLOPT_URL, url.c_str());
  set_transport(h.curl, ep, socket);
  curl_easy_setopt(h.curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h.curl, CURLOPT_NOSIGNAL, 1L);
  // libcurl's own default (300 s) stands in for "no limit" on connecting.
  curl_easy_setopt(h.curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(lim.connect.count()));
  curl_easy_setopt(h.curl, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h.curl, CURLOPT_WRITEDATA, &t);
  // A call has a total limit (which also ends a peer that trickles its
  // answer byte by byte); a stream is watched for silence instead; a wait
  // has the caller's limit.
  if (shape == Shape::wait) {
    curl_easy_setopt(h.curl, CURLOPT_TIMEOUT_MS, req.timeout_ms);
  } else if (shape == Shape::call) {
    curl_easy_setopt(h.curl, CURLOPT_TIMEOUT_MS, static_cast<long>(lim.call.count()));
  } else {
    t.idle = lim.idle;
    curl_easy_setopt(h.curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h.curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h.curl, CURLOPT_XFERINFODATA, &t);
  }
  // No "Expect: 100-continue" round trip before a body.
  h.headers = curl_slist_append(h.headers, "Expect:");
  for (const auto& hd : req.headers) h.headers = curl_slist_append(h.headers, hd.c_str());
  set_body(h, req, t);
  curl_easy_setopt(h.curl, CURLOPT_HTTPHEADER, h.headers);

  CURLcode rc = curl_easy_perform(h.curl);
  if (t.error) std::rethrow_exception(t.error);
  curl_easy_getinfo(h.curl, CURLINFO_RESPONSE_CODE, &resp.status);
  // dockerd's answer to plain HTTP on its TLS port.
  if (rc == CURLE_OK && resp.status == 400 && !ep.tls && has(resp.body, "HTTP request to an HTTPS server"))
    throw Unreachable("cannot reach the engine at " + ep.uri() +
                      ": the engine speaks TLS; set DOCKER_TLS_VERIFY=1 (or the runner's tls_verify = true) with "
                      "DOCKER_CERT_PATH holding ca.pem, cert.pem and key.pem");
  if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && t.stopped_by_sink)) return resp;
  if (rc == CURLE_OPERATION_TIMEDOUT && shape == Shape::wait) {
    resp.timed_out = true;
    return resp;
  }
  if (rc == CURLE_OPERATION_TIMEDOUT || (rc == CURLE_ABORTED_BY_CALLBACK && t.went_idle)) {
    curl_off_t connect_us = 0;
    curl_easy_getinfo(h.curl, CURLINFO_CONNECT_TIME_T, &connect_us);
    throw_timeout(ep, req, t, lim, connect_us > 0 || t.went_idle);
  }
  std::string why = *errbuf ? errbuf : curl_easy_strerror(rc);
  throw Unreachable("cannot reach the engine at " + ep.uri() + ": " + explain_failure(ep, rc, why));
}

HttpResponse http_ok(const Endpoint& ep, const HttpRequest& req) {
  HttpResponse r = http(ep, req);
  if (r.status >= 400) {
    std::string what = r.message();
    // Something that is not an engine (a web server on that port) answers
    // errors with no body: say which status, and where it came from.
    if (what.empty()) what = fmt::format("HTTP {} with an empty answer from {}: is a Docker engine listening there?", r.status, ep.uri());
    throw ApiError(static_cast<int>(r.status), req.method + " " + req.path.substr(0, req.path.find('?')) + ": " + what);
  }
  return r;
}

}  // namespace kiln::engine::detail
