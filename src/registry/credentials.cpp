// Credentials from the Docker config: credHelpers, credsStore, auths. The
// helpers are the docker-credential-helpers protocol: `docker-credential-NAME
// get`, the server on stdin, {"ServerURL","Username","Secret"} on stdout.
#include "registry/internal.h"

#include "util/child.h"
#include "util/env_limits.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

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
  using namespace std::chrono_literals;
  if (!valid_helper_name(name)) throw AuthError("credential helper name '" + name + "' is not valid");
  std::string prog = "docker-credential-" + name;
  // Bounded: a helper that hangs (a locked keychain prompt) is an error, and
  // the limit ends everything it started. Its stderr is not ours to show: it
  // may echo what it was given.
  ChildSpec spec{.argv = {prog, "get"}, .input = server_for(host), .capture_fd = 1,
                 .total = env_seconds("KILN_CREDENTIAL_HELPER_TIMEOUT", 30s)};
  std::string reply;
  ChildResult r;
  try {
    r = run_child(spec, [&](std::string_view bytes) {
      reply.append(bytes);
      return reply.size() <= (1 << 20);
    });
  } catch (const std::runtime_error& e) {
    throw AuthError("credential helper " + prog + ": " + e.what());
  }
  if (r.timed_out)
    throw AuthError("credential helper " + prog + " did not answer within " + describe_seconds(spec.total) +
                    " (KILN_CREDENTIAL_HELPER_TIMEOUT); it and its process group were killed");
  if (r.stopped) throw AuthError("credential helper " + prog + " answered with more than 1 MiB");
  if (r.status != 0) {
    // The protocol's "not found" is a message on stdout and exit 1.
    if (reply.find("credentials not found") != std::string::npos) return std::nullopt;
    throw AuthError("credential helper " + prog + " failed (exit " + std::to_string(r.status) + ")");
  }
  return from_helper_reply(reply, name);
}

}  // namespace detail

std::optional<Credentials> lookup_credentials(std::string_view host_in, const std::filesystem::path& dir,
                                              const std::string& helper) {
  std::string host = detail::lower(host_in);
  if (!helper.empty())
    if (auto c = detail::run_credential_helper(helper, host)) return c;
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
