// Documents named by URL come through the registry room's libcurl transport
// (its timeouts: 10 s to connect, 120 s a request); redirects are followed
// here, at most five (download.pytorch.org and PyPI redirect to their CDNs).
// Anything else is a file.
#include <filesystem>

#include <fmt/format.h>

#include "registry/internal.h"
#include "survey/internal.h"
#include "util/diag.h"
#include "util/text.h"

namespace kiln::survey::detail {

bool is_url(std::string_view text) { return text.starts_with("http://") || text.starts_with("https://"); }

Fetched fetch(const std::string& url_or_path, const std::string& accept) {
  if (!is_url(url_or_path)) {
    if (!std::filesystem::is_regular_file(url_or_path))
      throw InputError(Location{url_or_path, 0, 0}, "no such file");
    return {read_file(url_or_path), "", url_or_path};
  }
  registry::Options opts;
  // Plain HTTP only when asked for by the URL itself (a local mirror, the tests).
  opts.insecure = url_or_path.starts_with("http://");
  opts.timeout = std::chrono::milliseconds(60'000);
  registry::detail::Http http(opts);
  std::string url = url_or_path;
  for (int hop = 0; hop < 6; ++hop) {
    registry::detail::Request req;
    req.url = url;
    if (!accept.empty()) req.headers.push_back("Accept: " + accept);
    registry::detail::Response resp;
    try {
      resp = http.perform(req);
    } catch (const registry::Unreachable& e) {
      // The transport speaks of registries; here it is any web server.
      std::string why = e.what();
      if (auto at = why.find("the registry at"); at != std::string::npos) why.replace(at, 12, "the server");
      throw InputError(Location{url_or_path, 0, 0}, fmt::format("cannot fetch: {}", why));
    }
    if (resp.status >= 300 && resp.status < 400 && !resp.header("location").empty()) {
      url = registry::detail::resolve_url(url, resp.header("location"));
      continue;
    }
    if (resp.status != 200)
      throw InputError(Location{url_or_path, 0, 0}, fmt::format("cannot fetch: HTTP {}", resp.status));
    return {std::move(resp.body), resp.header("content-type"), url_or_path};
  }
  throw InputError(Location{url_or_path, 0, 0}, "cannot fetch: too many redirects");
}

}  // namespace kiln::survey::detail
