// HTTP(S) to a registry with libcurl: one easy handle per Client, so its
// connection (and TLS session) is reused across the many small requests of a
// promote. Redirects are never followed here: the client follows them itself
// and drops Authorization when the host changes.
#include "registry/internal.h"
#include "util/env_limits.h"

#include <curl/curl.h>

#include <algorithm>
#include <exception>
#include <mutex>

namespace kiln::registry::detail {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// What the write callback needs: the request's body sink is fed only once
// the status is known to be 2xx, so a 401, a redirect or a 5xx (which may
// be retried) never leaves bytes in it.
struct Transfer {
  CURL* curl;
  const Request& req;
  Response& resp;
  std::exception_ptr sink_error;  // a C callback must not throw: parked here
};

bool status_is_2xx(CURL* c) {
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  return status >= 200 && status < 300;
}

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (!t->req.body_sink || !status_is_2xx(t->curl)) {
    t->resp.body.append(data, len);
    return len;
  }
  try {
    if (!t->req.body_sink(std::string_view(data, len))) {
      t->resp.sink_stopped = true;
      return 0;  // anything but len aborts the transfer (CURLE_WRITE_ERROR)
    }
  } catch (...) {
    t->sink_error = std::current_exception();
    return 0;
  }
  t->resp.streamed += len;
  return len;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    r->headers.clear();  // a new response (after 100 Continue, or a proxy's)
    return size * n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name = lower(line.substr(0, colon));
  std::string_view v = line.substr(colon + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
  r->headers[name] = std::string(v);
  return size * n;
}

// "registry http://h:5000 did not answer GET /v2/ within 2 s
// (KILN_REGISTRY_TIMEOUT)": which limit ran out, and how to change it.
std::string timeout_text(CURL* c, const Request& req, const Options& o, const std::string& why) {
  const std::string who = "registry " + url_origin(req.url);
  curl_off_t connect_us = 0;
  curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &connect_us);
  if (connect_us == 0)
    return who + " did not accept a connection within " + describe_seconds(o.connect_timeout) +
           " (KILN_REGISTRY_CONNECT_TIMEOUT): " + why;
  std::string path = req.url.substr(url_origin(req.url).size());
  path = path.substr(0, path.find('?'));
  if (req.long_transfer)
    return who + " sent less than 1 KiB/s for " + describe_seconds(o.stall_timeout) + " during " + req.method + " " +
           path + " (KILN_REGISTRY_IDLE_TIMEOUT): " + why;
  return who + " did not answer " + req.method + " " + path + " within " + describe_seconds(o.timeout) +
         " (KILN_REGISTRY_TIMEOUT): " + why;
}

}  // namespace

struct Http::Impl {
  CURL* curl = nullptr;
  Options opts;
};

Http::Http(const Options& opts) : impl_(new Impl) {
  global_init();
  impl_->curl = curl_easy_init();
  impl_->opts = opts;
  impl_->opts.credentials.reset();  // the transport needs none
  if (!impl_->curl) {
    delete impl_;
    throw std::runtime_error("libcurl: cannot create a handle");
  }
}

Http::~Http() {
  curl_easy_cleanup(impl_->curl);
  delete impl_;
}

Response Http::perform(const Request& req) {
  CURL* c = impl_->curl;
  const Options& o = impl_->opts;
  curl_easy_reset(c);
  Response resp;
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count()));
  if (req.long_transfer) {
    // A multi-GB layer outlives any fixed timeout; a stalled one does not
    // (a stall_timeout of 0 turns that off too).
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 0L);
    if (o.stall_timeout.count() > 0) {
      curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
      curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o.stall_timeout.count()));
    }
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L << 10);  // fewer, larger pieces for the sink
  } else {
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(o.timeout.count()));
  }
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o.insecure ? "http,https" : "https");
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!o.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, o.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_USERAGENT, "kiln/0.1");
  Transfer transfer{c, req, resp, nullptr};
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp);

  curl_slist* headers = curl_slist_append(nullptr, "Expect:");
  for (const auto& h : req.headers) headers = curl_slist_append(headers, h.c_str());
  if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method != "GET" || req.has_body) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    if (req.has_body || req.method == "PUT" || req.method == "POST") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
      if (req.body.empty()) headers = curl_slist_append(headers, "Content-Type:");
    }
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  // The handle holds the last request's headers (Authorization) until the
  // next reset: drop them now.
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  if (transfer.sink_error) std::rethrow_exception(transfer.sink_error);
  if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && resp.sink_stopped)) return resp;
  std::string why = *errbuf ? errbuf : curl_easy_strerror(rc);
  std::string where = url_origin(req.url);
  if (resp.streamed > 0)
    throw BodyInterrupted("the registry at " + where + " broke off after " + std::to_string(resp.streamed) +
                          " bytes: " + why);
  if (rc == CURLE_OPERATION_TIMEDOUT) throw Timeout(timeout_text(c, req, o, why));
  throw Unreachable("cannot reach the registry at " + where + ": " + why);
}

}  // namespace kiln::registry::detail
