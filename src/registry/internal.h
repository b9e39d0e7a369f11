// Pieces of the registry room shared by its files; not part of its interface
// (tests include it for the parsers).
#pragma once
#include "util/base64.h"
#include "util/text.h"

#include "registry/registry.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::registry::detail {

// ---- text ----
using kiln::base64_decode;  // util/base64.h
using kiln::base64_encode;
using kiln::lower;  // util/text.h

// A WWW-Authenticate challenge: scheme ("bearer", "basic", lower-cased) and
// its parameters (realm, service, scope, error), quoted strings unescaped.
struct Challenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
std::optional<Challenge> parse_challenge(std::string_view header);

// The URL in a Link header with rel="next" ("</v2/x/tags/list?n=100&last=a>; rel=\"next\"").
std::string parse_link_next(std::string_view header);
// Retry-After in seconds (the HTTP-date form is ignored); nullopt if absent/bad.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view header);

// "https://index.docker.io/v1/", "http://h:5000/v2/", "h:5000" -> "index.docker.io", "h:5000", "h:5000".
std::string config_key_host(std::string_view key);
// The Docker Hub aliases all map to the "https://index.docker.io/v1/" key.
bool is_docker_hub(std::string_view host);

// scheme://authority of a URL ("https://a:1/x?y" -> "https://a:1"); "" if none.
std::string url_origin(std::string_view url);
// Resolves a Location (absolute, or absolute-path) against the request URL.
std::string resolve_url(std::string_view base, std::string_view location);

// ---- HTTP ----
struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  bool has_body = false;  // send body (even empty) with Content-Length
  // Where a 2xx reply's body goes, piece by piece, instead of Response::body
  // (a layer is too big to hold). Other statuses still fill Response::body,
  // for error texts. Returning false ends the transfer early, on purpose.
  std::function<bool(std::string_view)> body_sink;
  // A download that may take long (a layer): no total timeout; it gives up
  // when slower than 1 KiB/s for Options::stall_timeout instead.
  bool long_transfer = false;
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names; last value wins
  std::string body;
  std::uint64_t streamed = 0;  // bytes handed to Request::body_sink
  bool sink_stopped = false;   // the sink returned false: cut short on purpose
  std::string header(const std::string& lower_name) const;
};

// The transport failed after body bytes had reached Request::body_sink. The
// sink cannot take them back, so this is never retried.
struct BodyInterrupted : Unreachable {
  using Unreachable::Unreachable;
};

// One libcurl easy handle (connections reused between calls). Throws
// Unreachable/Timeout on transport failure (BodyInterrupted once the body
// sink has had bytes); never follows redirects.
class Http {
 public:
  Http(const Options& opts);
  ~Http();
  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;
  Response perform(const Request& req);

 private:
  struct Impl;
  Impl* impl_;
};

// ---- credential helpers ----
// Runs `docker-credential-<name> get` with `host` on stdin (posix_spawnp,
// no shell). nullopt: the helper knows no credentials for it.
std::optional<Credentials> run_credential_helper(const std::string& name, std::string_view host);

// The registry's error document: "CODE: message" of its first error, else
// the body cut to 200 bytes.
std::string error_text(const Response& r, std::string* code = nullptr);

}  // namespace kiln::registry::detail
