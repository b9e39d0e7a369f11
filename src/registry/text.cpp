// Small parsers of the registry room: base64, WWW-Authenticate, Link,
// Retry-After, config keys, URLs, references.
#include "registry/internal.h"
#include "util/text.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <charconv>

#include "util/sha256.h"

namespace kiln::registry::detail {

std::optional<Challenge> parse_challenge(std::string_view h) {
  auto skip_ws = [&] {
    while (!h.empty() && (h.front() == ' ' || h.front() == '\t' || h.front() == ',')) h.remove_prefix(1);
  };
  skip_ws();
  std::size_t sp = h.find_first_of(" \t");
  if (h.empty()) return std::nullopt;
  Challenge c;
  c.scheme = lower(h.substr(0, sp));
  if (sp == std::string_view::npos) return c;
  h.remove_prefix(sp);
  while (true) {
    skip_ws();
    if (h.empty()) break;
    std::size_t eq = h.find('=');
    if (eq == std::string_view::npos) break;
    std::string key = lower(h.substr(0, eq));
    while (!key.empty() && key.back() == ' ') key.pop_back();
    h.remove_prefix(eq + 1);
    while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
    std::string value;
    if (!h.empty() && h.front() == '"') {
      h.remove_prefix(1);
      while (!h.empty() && h.front() != '"') {
        if (h.front() == '\\' && h.size() > 1) h.remove_prefix(1);
        value += h.front();
        h.remove_prefix(1);
      }
      if (!h.empty()) h.remove_prefix(1);
    } else {
      std::size_t end = h.find(',');
      value = std::string(h.substr(0, end));
      while (!value.empty() && value.back() == ' ') value.pop_back();
      h.remove_prefix(end == std::string_view::npos ? h.size() : end);
    }
    c.params[key] = value;
  }
  return c;
}

std::string parse_link_next(std::string_view h) {
  // Possibly several links separated by ','.
  while (!h.empty()) {
    std::size_t lt = h.find('<'), gt = h.find('>');
    if (lt == std::string_view::npos || gt == std::string_view::npos || gt < lt) return {};
    std::string url(h.substr(lt + 1, gt - lt - 1));
    std::size_t next = h.find('<', gt);
    std::string_view params = h.substr(gt + 1, next == std::string_view::npos ? std::string_view::npos : next - gt - 1);
    std::string p = lower(params);
    if (p.find("rel=\"next\"") != std::string::npos || p.find("rel=next") != std::string::npos) return url;
    if (next == std::string_view::npos) break;
    h.remove_prefix(next);
  }
  return {};
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view h) {
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
  long long secs = 0;
  auto [p, ec] = std::from_chars(h.data(), h.data() + h.size(), secs);
  if (h.empty() || ec != std::errc() || p != h.data() + h.size() || secs < 0) return std::nullopt;
  return std::chrono::milliseconds(secs * 1000);
}

std::string config_key_host(std::string_view key) {
  if (auto p = key.find("://"); p != std::string_view::npos) key.remove_prefix(p + 3);
  if (auto p = key.find('/'); p != std::string_view::npos) key = key.substr(0, p);
  return lower(key);
}

bool is_docker_hub(std::string_view host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

std::string url_origin(std::string_view url) {
  auto p = url.find("://");
  if (p == std::string_view::npos) return {};
  auto slash = url.find('/', p + 3);
  return lower(url.substr(0, slash));
}

std::string resolve_url(std::string_view base, std::string_view loc) {
  if (loc.find("://") != std::string_view::npos) return std::string(loc);
  if (loc.starts_with("//")) {
    auto p = base.find("://");
    return std::string(base.substr(0, p + 1)) + std::string(loc);
  }
  std::string origin = url_origin(base);
  if (loc.starts_with("/")) return origin + std::string(loc);
  // Relative path: beside the base's last '/'.
  std::string_view b = base.substr(0, base.find('?'));
  return std::string(b.substr(0, b.rfind('/') + 1)) + std::string(loc);
}

std::string Response::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string error_text(const Response& r, std::string* code) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    const auto& e = j["errors"][0];
    std::string c = e.value("code", std::string());
    std::string m = e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
    if (code) *code = c;
    return c.empty() ? m : c + ": " + m;
  }
  std::string b = r.body.substr(0, 200);
  for (char& ch : b)
    if (ch == '\n' || ch == '\r') ch = ' ';
  return b;
}

}  // namespace kiln::registry::detail

namespace kiln::registry {

std::string fallback_tag(std::string_view subject, std::string_view suffix) {
  std::string s(subject);
  if (auto p = s.find(':'); p != std::string::npos) s[p] = '-';
  return s + "." + std::string(suffix);
}

std::string Reference::str() const {
  std::string s = host + "/" + repo;
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

bool is_loopback_host(std::string_view host) {
  std::string_view name = host;
  if (name.starts_with('[')) {
    name = name.substr(1, name.find(']') - 1);  // "[::1]:5000" -> "::1"
  } else if (auto colon = name.rfind(':'); colon != std::string_view::npos) {
    name = name.substr(0, colon);
  }
  if (name == "::1" || detail::lower(name) == "localhost") return true;
  if (!name.starts_with("127.")) return false;
  int dots = 0;
  for (char c : name) {
    if (c == '.') ++dots;
    else if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return dots == 3;
}

Reference parse_reference(std::string_view s) {
  if (s.empty()) throw std::invalid_argument("empty image reference");
  Reference r;
  std::string rest(s);
  if (auto at = rest.find('@'); at != std::string::npos) {
    r.digest = rest.substr(at + 1);
    rest.resize(at);
    if (!is_sha256_digest(r.digest))
      throw std::invalid_argument("image reference " + std::string(s) + ": digest must be sha256:<64 hex>");
  }
  auto slash = rest.find('/');
  std::string first = rest.substr(0, slash);
  if (slash != std::string::npos &&
      (first.find('.') != std::string::npos || first.find(':') != std::string::npos || first == "localhost")) {
    r.host = first;
    rest = rest.substr(slash + 1);
  } else {
    r.host = "docker.io";
  }
  auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    r.tag = rest.substr(colon + 1);
    rest.resize(colon);
  }
  if (rest.empty()) throw std::invalid_argument("image reference " + std::string(s) + ": no repository");
  for (char c : rest)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '/' || c == '.' || c == '_' || c == '-'))
      throw std::invalid_argument("image reference " + std::string(s) +
                                  ": repository names are lower-case letters, digits and ._-/");
  if (r.host == "docker.io" && rest.find('/') == std::string::npos) rest = "library/" + rest;
  r.repo = rest;
  if (r.tag.empty() && r.digest.empty()) r.tag = "latest";
  return r;
}

}  // namespace kiln::registry
