// Credentials from the Docker config: credHelpers, credsStore, auths. The
// helpers are the docker-credential-helpers protocol: `docker-credential-NAME
// get`, the server on stdin, {"ServerURL","Username","Secret"} on stdout.
#include "registry/internal.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace kiln::registry {

std::filesystem::path docker_config_dir() {
  if (const char* d = std::getenv("DOCKER_CONFIG"); d && *d) return d;
  if (const char* h = std::getenv("HOME"); h && *h) return std::filesystem::path(h) / ".docker";
  return ".docker";
}

namespace {

using nlohmann::json;

// The key Docker uses for a host in auths/credHelpers, and the ServerURL a
// helper is asked for.
std::string server_for(std::string_view host) {
  return detail::is_docker_hub(host) ? "https://index.docker.io/v1/" : std::string(host);
}

bool valid_helper_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

Credentials from_helper_reply(const std::string& out, const std::string& helper) {
  auto j = json::parse(out, nullptr, false);
  if (!j.is_object() || !j.contains("Secret") || !j["Secret"].is_string())
    throw AuthError("credential helper docker-credential-" + helper + " gave no {Username, Secret} reply");
  Credentials c;
  std::string user = j.value("Username", std::string());
  if (user == "<token>")
    c.identity_token = j["Secret"].get<std::string>();
  else {
    c.username = user;
    c.password = j["Secret"].get<std::string>();
  }
  return c;
}

}  // namespace

namespace detail {

std::optional<Credentials> run_credential_helper(const std::string& name, std::string_view host) {
  if (!valid_helper_name(name)) throw AuthError("credential helper name '" + name + "' is not valid");
  std::string prog = "docker-credential-" + name;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) throw AuthError("cannot run " + prog + ": pipe: " + std::strerror(errno));
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    throw AuthError("cannot run " + prog + ": pipe: " + std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  // The helper's stderr is not ours to show: it may echo what it was given.
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::string arg0 = prog, arg1 = "get";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, prog.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    throw AuthError("cannot run credential helper " + prog + ": " + std::strerror(rc));
  }
  // Ignore SIGPIPE for the write: a helper may exit without reading.
  std::string server = server_for(host);
  struct sigaction ign {}, old {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old);
  std::size_t off = 0;
  while (off < server.size()) {
    ssize_t w = write(in[1], server.data() + off, server.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += static_cast<std::size_t>(w);
  }
  sigaction(SIGPIPE, &old, nullptr);
  close(in[1]);
  std::string reply;
  char buf[4096];
  // Bounded: a helper that hangs (a locked keychain prompt) is an error.
  constexpr int kHelperTimeoutMs = 30'000;
  bool timed_out = false;
  while (true) {
    pollfd p{out[0], POLLIN, 0};
    int pr = poll(&p, 1, kHelperTimeoutMs);
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) {
      timed_out = true;
      break;
    }
    ssize_t r = read(out[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    reply.append(buf, static_cast<std::size_t>(r));
    if (reply.size() > (1 << 20)) break;
  }
  close(out[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) throw AuthError("credential helper " + prog + " did not answer within 30 s");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // The protocol's "not found" is a message on stdout and exit 1.
    if (reply.find("credentials not found") != std::string::npos) return std::nullopt;
    throw AuthError("credential helper " + prog + " failed (exit " +
                    std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) + ")");
  }
  return from_helper_reply(reply, name);
}

}  // namespace detail

std::optional<Credentials> lookup_credentials(std::string_view host_in, const std::filesystem::path& dir) {
  std::string host = detail::lower(host_in);
  std::filesystem::path file = dir / "config.json";
  std::ifstream f(file);
  if (!f) return std::nullopt;  // no config: anonymous
  std::stringstream ss;
  ss << f.rdbuf();
  auto cfg = json::parse(ss.str(), nullptr, false);
  if (!cfg.is_object()) throw AuthError(file.string() + ": not a JSON object");

  auto matches = [&](const std::string& key) {
    std::string k = detail::config_key_host(key);
    return k == host || (detail::is_docker_hub(host) && detail::is_docker_hub(k));
  };

  if (cfg.contains("credHelpers") && cfg["credHelpers"].is_object())
    for (auto& [key, v] : cfg["credHelpers"].items())
      if (matches(key) && v.is_string()) return detail::run_credential_helper(v.get<std::string>(), host);

  if (cfg.contains("credsStore") && cfg["credsStore"].is_string() && !cfg["credsStore"].get<std::string>().empty())
    if (auto c = detail::run_credential_helper(cfg["credsStore"].get<std::string>(), host)) return c;

  if (cfg.contains("auths") && cfg["auths"].is_object())
    for (auto& [key, v] : cfg["auths"].items()) {
      if (!matches(key) || !v.is_object()) continue;
      Credentials c;
      if (v.contains("identitytoken") && v["identitytoken"].is_string())
        c.identity_token = v["identitytoken"].get<std::string>();
      if (v.contains("auth") && v["auth"].is_string() && !v["auth"].get<std::string>().empty()) {
        auto dec = detail::base64_decode(v["auth"].get<std::string>());
        auto colon = dec ? dec->find(':') : std::string::npos;
        // Never quote the value: it is the secret.
        if (colon == std::string::npos)
          throw AuthError(file.string() + ": auths[\"" + key + "\"].auth is not base64 of user:password");
        c.username = dec->substr(0, colon);
        c.password = dec->substr(colon + 1);
      } else {
        if (v.contains("username") && v["username"].is_string()) c.username = v["username"].get<std::string>();
        if (v.contains("password") && v["password"].is_string()) c.password = v["password"].get<std::string>();
      }
      if (!c.empty()) return c;
    }
  return std::nullopt;
}

std::string engine_auth(const std::optional<Credentials>& creds, std::string_view server) {
  if (!creds || creds->empty()) return "e30=";
  json j = json::object();
  if (!creds->identity_token.empty()) {
    j["identitytoken"] = creds->identity_token;
  } else {
    j["username"] = creds->username;
    j["password"] = creds->password;
  }
  j["serveraddress"] = server_for(server);
  return detail::base64_encode(j.dump(), /*url=*/true);
}

}  // namespace kiln::registry
