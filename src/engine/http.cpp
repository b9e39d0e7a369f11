// HTTP to the engine over its unix socket with libcurl. One easy handle per
// request: requests are few and long (builds, waits), so reuse buys nothing.
#include "engine/internal.h"
#include "util/env_limits.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <mutex>

namespace kiln::engine {

Endpoint Endpoint::parse(std::string_view url) {
  constexpr std::string_view scheme = "unix://";
  if (!url.starts_with(scheme)) {
    const auto colon = url.find("://");
    throw std::invalid_argument(
        "engine " + std::string(url) + ": " +
        (colon == std::string_view::npos ? std::string("not a URL")
                                         : "kiln cannot drive " + std::string(url.substr(0, colon)) + ":// engines yet") +
        "; kiln speaks to engines over unix sockets only (unix:///path/to.sock)");
  }
  const std::string_view path = url.substr(scheme.size());
  if (!path.starts_with('/'))
    throw std::invalid_argument("engine " + std::string(url) + ": a unix socket URL names an absolute path (unix:///path/to.sock)");
  Endpoint ep;
  ep.socket_path = std::string(path);
  return ep;
}

Endpoint Endpoint::from_env() {
  const char* host = std::getenv("DOCKER_HOST");
  if (!host || !*host) return Endpoint{};
  try {
    return parse(host);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("DOCKER_HOST: ") + e.what());
  }
}

}  // namespace kiln::engine

namespace kiln::engine::detail {
namespace {

// The API version every call names: 1.41 is Docker 20.10's, and Podman's
// compat service accepts it too (docs/engine.md).
constexpr const char* kBase = "http://localhost/v1.41";

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
  std::string url = kBase + req.path;
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h.curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h.curl, CURLOPT_UNIX_SOCKET_PATH, ep.socket_path.c_str());
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
  throw Unreachable("cannot reach the engine at " + ep.uri() + ": " + why);
}

HttpResponse http_ok(const Endpoint& ep, const HttpRequest& req) {
  HttpResponse r = http(ep, req);
  if (r.status >= 400)
    throw ApiError(static_cast<int>(r.status),
                   req.method + " " + req.path.substr(0, req.path.find('?')) + ": " + r.message());
  return r;
}

}  // namespace kiln::engine::detail
