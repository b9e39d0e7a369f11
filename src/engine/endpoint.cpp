// Engine URLs as Docker writes them (DOCKER_HOST, `docker -H`): unix://,
// tcp:// (plain or TLS, DOCKER_TLS_VERIFY / DOCKER_CERT_PATH) and ssh://.
// docs/engine.md, "Remote engines".
#include "engine/internal.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

extern char** environ;  // docker_cli_env starts from kiln's own

namespace kiln::engine {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kDefaultSocket = "/var/run/docker.sock";

[[noreturn]] void bad(std::string_view url, const std::string& why) {
  throw std::invalid_argument("engine " + std::string(url) + ": " + why);
}

int parse_port(std::string_view url, std::string_view text) {
  int port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535)
    bad(url, "port '" + std::string(text) + "' is not a number from 1 to 65535");
  return port;
}

// Letters, digits, '.', '-', '_' (and ':' inside brackets): never a leading
// '-', which ssh would read as an option.
bool plain_name(std::string_view s, bool colons = false) {
  if (s.empty() || s.front() == '-') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || (colons && c == ':')))
      return false;
  return true;
}

// "host", "host:port", "[::1]", "[::1]:port" -> host (no brackets) and the
// port as written ("" when not).
void split_host_port(std::string_view url, std::string_view authority, std::string& host, std::string_view& port) {
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) bad(url, "an IPv6 address is closed with ']'");
    host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) bad(url, "expected ':PORT' after ']'");
    port = rest.empty() ? rest : rest.substr(1);
    if (!plain_name(host, true)) bad(url, "'" + host + "' is not an IPv6 address");
    return;
  }
  const auto colon = authority.rfind(':');
  host = std::string(authority.substr(0, colon));
  port = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon + 1);
  if (colon != std::string_view::npos && port.empty()) bad(url, "':' without a port");
  if (host.empty()) bad(url, "no host (tcp://HOST:PORT, ssh://USER@HOST)");
  if (!plain_name(host)) bad(url, "'" + host + "' is not a host name or address");
}

std::string bracketed(const std::string& host) {
  return host.find(':') == std::string::npos ? host : "[" + host + "]";
}

std::string home_docker_dir() {
  const char* home = std::getenv("HOME");
  return home && *home ? (fs::path(home) / ".docker").string() : std::string();
}

// Decides TLS for a tcp engine and finds its files (see Endpoint::parse).
void resolve_tls(Endpoint& ep, const TlsSettings& t, std::string_view url, bool port_written) {
  const bool named = !t.ca.empty() || !t.cert.empty() || !t.key.empty();
  ep.tls = t.verify.value_or(named || (port_written && ep.port == 2376));
  if (!port_written) ep.port = ep.tls ? 2376 : 2375;
  if (!ep.tls) return;
  const fs::path dir = t.cert_path.empty() ? home_docker_dir() : t.cert_path;
  auto pick = [&](const std::string& given, const char* file, const char* what) -> std::string {
    std::error_code ec;
    if (!given.empty()) {
      if (!fs::is_regular_file(given, ec))
        bad(url, std::string(what) + " file " + given + " does not exist (or is not a file)");
      return fs::absolute(given).string();
    }
    if (!dir.empty() && fs::is_regular_file(dir / file, ec)) return (dir / file).string();
    return "";
  };
  ep.ca = pick(t.ca, "ca.pem", "ca");
  ep.cert = pick(t.cert, "cert.pem", "cert");
  ep.key = pick(t.key, "key.pem", "key");
  if (ep.cert.empty() != ep.key.empty())
    bad(url, "a client certificate needs both cert and key (found " +
                 (ep.cert.empty() ? "key " + ep.key : "cert " + ep.cert) + " only)");
}

Endpoint parse_unix(std::string_view url, std::string_view path) {
  if (!path.starts_with('/')) bad(url, "a unix socket URL names an absolute path (unix:///path/to.sock)");
  Endpoint ep;
  ep.socket_path = std::string(path);
  return ep;
}

Endpoint parse_tcp(std::string_view url, std::string_view rest, const TlsSettings& tls) {
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos || rest.find('@') != std::string_view::npos)
    bad(url, "a tcp engine is tcp://HOST:PORT, without a user or a path");
  Endpoint ep;
  ep.transport = Endpoint::Transport::tcp;
  std::string_view port;
  split_host_port(url, rest, ep.host, port);
  if (!port.empty()) ep.port = parse_port(url, port);
  resolve_tls(ep, tls, url, !port.empty());
  return ep;
}

Endpoint parse_ssh(std::string_view url, std::string_view rest) {
  Endpoint ep;
  ep.transport = Endpoint::Transport::ssh;
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos && rest.size() > slash + 1) ep.socket_path = std::string(rest.substr(slash));
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    ep.user = std::string(authority.substr(0, at));
    if (!plain_name(ep.user)) bad(url, "'" + ep.user + "' is not a user name");
    authority = authority.substr(at + 1);
  }
  std::string_view port;
  split_host_port(url, authority, ep.host, port);
  if (!port.empty()) ep.port = parse_port(url, port);
  return ep;
}

}  // namespace

TlsSettings TlsSettings::from_env() {
  TlsSettings t;
  // As the Docker CLI: set and not empty turns verification on ("0" and
  // "false" are read as off, since a user writing them means it).
  if (const char* v = std::getenv("DOCKER_TLS_VERIFY"); v && *v)
    t.verify = std::string_view(v) != "0" && std::string_view(v) != "false";
  if (const char* p = std::getenv("DOCKER_CERT_PATH"); p && *p) t.cert_path = p;
  return t;
}

std::string Endpoint::uri() const {
  switch (transport) {
    case Transport::tcp:
      return "tcp://" + bracketed(host) + ":" + std::to_string(port);
    case Transport::ssh:
      return "ssh://" + (user.empty() ? "" : user + "@") + bracketed(host) + (port ? ":" + std::to_string(port) : "") +
             (socket_path == kDefaultSocket ? "" : socket_path);
    case Transport::unix_socket:
      break;
  }
  return "unix://" + socket_path;
}

Endpoint Endpoint::parse(std::string_view url, const TlsSettings& tls) {
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) bad(url, "not a URL (unix:///path/to.sock, tcp://HOST:PORT, ssh://USER@HOST)");
  const std::string_view scheme = url.substr(0, sep), rest = url.substr(sep + 3);
  if (scheme == "unix") return parse_unix(url, rest);
  if (scheme == "tcp") return parse_tcp(url, rest, tls);
  if (scheme == "ssh") return parse_ssh(url, rest);
  bad(url, "kiln cannot drive " + std::string(scheme) +
               ":// engines; it speaks to unix:///path/to.sock, tcp://HOST:PORT (plain or TLS) and ssh://USER@HOST");
}

Endpoint Endpoint::from_env() {
  const char* host = std::getenv("DOCKER_HOST");
  if (!host || !*host) return Endpoint{};
  try {
    return parse(host, TlsSettings::from_env());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("DOCKER_HOST: ") + e.what());
  }
}

std::vector<std::string> docker_cli_env(const Endpoint& ep, const fs::path& scratch) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv = *e;
    if (kv.starts_with("DOCKER_HOST=") || kv.starts_with("DOCKER_CONTEXT=") || kv.starts_with("DOCKER_TLS") ||
        kv.starts_with("DOCKER_CERT_PATH="))
      continue;
    env.emplace_back(kv);
  }
  switch (ep.transport) {
    case Endpoint::Transport::unix_socket:
      env.push_back("DOCKER_HOST=" + ep.uri());
      break;
    case Endpoint::Transport::ssh:
      // The CLI would run `docker system dial-stdio` on the host itself;
      // kiln's own tunnel is already there and needs no docker CLI remotely.
      env.push_back("DOCKER_HOST=unix://" + detail::local_socket(ep));
      break;
    case Endpoint::Transport::tcp: {
      env.push_back("DOCKER_HOST=" + ep.uri());
      if (!ep.tls) break;
      // The CLI reads fixed names from one directory: links to the files.
      const fs::path dir = scratch / "docker-tls";
      fs::create_directories(dir);
      for (auto [file, name] : {std::pair{&ep.ca, "ca.pem"}, {&ep.cert, "cert.pem"}, {&ep.key, "key.pem"}}) {
        std::error_code ec;
        fs::remove(dir / name, ec);
        if (!file->empty()) fs::create_symlink(*file, dir / name);
      }
      env.push_back("DOCKER_TLS_VERIFY=1");
      env.push_back("DOCKER_CERT_PATH=" + dir.string());
      break;
    }
  }
  return env;
}

}  // namespace kiln::engine
