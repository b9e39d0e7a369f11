// Engine API calls other than build: ping, version, images, containers, push.
#include "engine/internal.h"

#include <algorithm>
#include <fstream>
#include <thread>

namespace kiln::engine {

using detail::http;
using detail::http_ok;
using detail::HttpRequest;
using detail::url_escape;
using nlohmann::json;

namespace {

HttpRequest get(std::string path) { return {.method = "GET", .path = std::move(path)}; }
HttpRequest post(std::string path, std::string body = {}) {
  HttpRequest r{.method = "POST", .path = std::move(path), .body = std::move(body)};
  if (!r.body.empty()) r.headers.push_back("Content-Type: application/json");
  return r;
}

json parse_json(const std::string& body, const std::string& what) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw ApiError(0, what + ": the engine sent malformed JSON");
  return j;
}

template <class T>
T value_or(const json& j, const char* key, T dflt) {
  auto it = j.find(key);
  return it != j.end() && !it->is_null() ? it->get<T>() : dflt;
}

}  // namespace

Client::Client(Endpoint endpoint) : ep_(std::move(endpoint)) {}

void Client::ping() { http_ok(ep_, get("/_ping")); }

VersionInfo Client::version() {
  json j = parse_json(http_ok(ep_, get("/version")).body, "GET /version");
  VersionInfo v{value_or<std::string>(j, "Version", ""), value_or<std::string>(j, "ApiVersion", ""),
                value_or<std::string>(j, "Os", ""), value_or<std::string>(j, "Arch", "")};
  for (const auto& c : value_or<json>(j, "Components", json::array()))
    if (value_or<std::string>(c, "Name", "").starts_with("Podman")) v.podman = true;
  return v;
}

// ---- images ----

std::optional<ImageInfo> Client::inspect_image(const std::string& name) {
  auto r = http(ep_, get("/images/" + name + "/json"));
  if (r.status == 404) return std::nullopt;
  if (r.status >= 400) throw ApiError(static_cast<int>(r.status), "inspect " + name + ": " + r.message());
  json j = parse_json(r.body, "inspect " + name);
  ImageInfo info;
  info.id = value_or<std::string>(j, "Id", "");
  info.repo_tags = value_or<std::vector<std::string>>(j, "RepoTags", {});
  info.repo_digests = value_or<std::vector<std::string>>(j, "RepoDigests", {});
  info.size = value_or<std::int64_t>(j, "Size", 0);
  json cfg = value_or<json>(j, "Config", json::object());
  info.env = value_or<std::vector<std::string>>(cfg, "Env", {});
  info.labels = value_or<std::map<std::string, std::string>>(cfg, "Labels", {});
  info.user = value_or<std::string>(cfg, "User", "");
  return info;
}

bool Client::image_exists(const std::string& name) { return inspect_image(name).has_value(); }

std::vector<HistoryEntry> Client::image_history(const std::string& name) {
  auto r = http(ep_, get("/images/" + name + "/history"));
  if (r.status >= 400) throw ApiError(static_cast<int>(r.status), "history of " + name + ": " + r.message());
  json j = parse_json(r.body, "history of " + name);
  std::vector<HistoryEntry> out;
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (!e.is_object()) continue;
    out.push_back({value_or<std::string>(e, "CreatedBy", ""), value_or<std::int64_t>(e, "Size", 0)});
  }
  return out;
}

std::vector<HistoryEntry> largest_layers(std::vector<HistoryEntry> history, std::size_t top) {
  std::stable_sort(history.begin(), history.end(), [](const auto& a, const auto& b) { return a.size > b.size; });
  while (!history.empty() && (history.size() > top || history.back().size <= 0)) history.pop_back();
  return history;
}

void Client::tag_image(const std::string& name, const std::string& repo, const std::string& tag) {
  http_ok(ep_, post("/images/" + name + "/tag?repo=" + url_escape(repo) + "&tag=" + url_escape(tag)));
}

void Client::remove_image(const std::string& name, bool force) {
  http_ok(ep_, {.method = "DELETE", .path = "/images/" + name + (force ? "?force=1" : "")});
}

void Client::save_image(const std::string& name, const ChunkFn& sink) {
  // /images/{name}/get is the single-image form; Podman serves it too.
  auto req = get("/images/" + name + "/get");
  req.on_data = sink;
  http_ok(ep_, req);
}

std::string Client::import_image(const ReadFn& tar, const std::string& repo, const std::string& tag) {
  HttpRequest req{.method = "POST",
                  .path = "/images/create?fromSrc=-&repo=" + url_escape(repo) + "&tag=" + url_escape(tag),
                  .headers = {"Content-Type: application/x-tar"},
                  .body_reader = tar};
  // The reply is a progress stream; a failure arrives in it as {"error"}.
  std::string id, error;
  detail::JsonSplitter split(
      [&](const json& m) {
        if (m.contains("error")) error = value_or<std::string>(m, "error", "");
        else if (m.contains("status")) id = value_or<std::string>(m, "status", "");
      },
      nullptr);
  req.on_data = [&](std::string_view c) { split.feed(c); return true; };
  http_ok(ep_, req);
  if (!error.empty()) throw ApiError(200, "import " + repo + ":" + tag + ": " + error);
  if (!id.starts_with("sha256:")) {  // Podman answers with other status lines: ask
    auto info = inspect_image(repo + ":" + tag);
    if (!info) throw ApiError(200, "import " + repo + ":" + tag + ": no image afterwards");
    id = info->id;
  }
  return id;
}

std::string Client::import_image(const std::filesystem::path& tar, const std::string& repo,
                                 const std::string& tag) {
  std::ifstream in(tar, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + tar.string());
  return import_image(
      [&](char* buf, std::size_t n) -> std::size_t {
        in.read(buf, static_cast<std::streamsize>(n));
        if (in.bad()) throw std::runtime_error("reading " + tar.string() + " failed");
        return static_cast<std::size_t>(in.gcount());
      },
      repo, tag);
}

// ---- containers ----

namespace {

json host_config(const ContainerSpec& s) {
  json hc = json::object();
  if (!s.binds.empty()) hc["Binds"] = s.binds;
  if (s.shm_size > 0) hc["ShmSize"] = s.shm_size;
  if (!s.ipc_mode.empty()) hc["IpcMode"] = s.ipc_mode;
  if (s.memory > 0) hc["Memory"] = s.memory;
  if (!s.network_mode.empty()) hc["NetworkMode"] = s.network_mode;
  if (!s.tmpfs.empty()) hc["Tmpfs"] = s.tmpfs;
  hc["ReadonlyRootfs"] = s.readonly_rootfs;
  json devices = json::array();
  for (const auto& d : s.devices)
    devices.push_back({{"PathOnHost", d.host},
                       {"PathInContainer", d.container.empty() ? d.host : d.container},
                       {"CgroupPermissions", d.permissions}});
  if (!devices.empty()) hc["Devices"] = devices;
  json requests = json::array();
  for (const auto& r : s.device_requests)
    requests.push_back({{"Driver", r.driver},
                        {"Count", r.count},
                        {"DeviceIDs", r.device_ids},
                        {"Capabilities", r.capabilities}});
  if (!requests.empty()) hc["DeviceRequests"] = requests;
  return hc;
}

}  // namespace

std::string Client::create_container(const ContainerSpec& s, const std::string& name) {
  json body = {{"Image", s.image}, {"HostConfig", host_config(s)}, {"Tty", false},
               {"AttachStdout", false}, {"AttachStderr", false}};
  if (!s.cmd.empty()) body["Cmd"] = s.cmd;
  if (!s.entrypoint.empty()) body["Entrypoint"] = s.entrypoint;
  if (!s.env.empty()) body["Env"] = s.env;
  if (!s.user.empty()) body["User"] = s.user;
  if (!s.labels.empty()) body["Labels"] = s.labels;
  if (s.network_mode == "none") body["NetworkDisabled"] = true;
  std::string path = "/containers/create" + (name.empty() ? "" : "?name=" + url_escape(name));
  json j = parse_json(http_ok(ep_, post(path, body.dump())).body, "create container");
  return value_or<std::string>(j, "Id", "");
}

void Client::start_container(const std::string& id) {
  http_ok(ep_, post("/containers/" + id + "/start"));
}

void Client::kill_container(const std::string& id) {
  auto r = http(ep_, post("/containers/" + id + "/kill"));
  // 409: it stopped on its own meanwhile — that is what we wanted.
  if (r.status >= 400 && r.status != 409)
    throw ApiError(static_cast<int>(r.status), "kill " + id + ": " + r.message());
}

WaitResult Client::wait_container(const std::string& id, std::chrono::milliseconds limit) {
  auto req = post("/containers/" + id + "/wait?condition=not-running");
  req.timeout_ms = std::max<long>(1, static_cast<long>(limit.count()));
  auto r = http(ep_, req);
  WaitResult w;
  if (r.timed_out) {
    kill_container(id);
    w.timed_out = true;
    req.timeout_ms = 30000;  // SIGKILL stops it; only the engine can be slow now
    r = http(ep_, req);
    if (r.timed_out) return w;
  }
  if (r.status >= 400) throw ApiError(static_cast<int>(r.status), "wait " + id + ": " + r.message());
  json j = parse_json(r.body, "wait " + id);
  w.exit_code = value_or<std::int64_t>(j, "StatusCode", -1);
  if (j.contains("Error") && j["Error"].is_object())
    w.error = value_or<std::string>(j["Error"], "Message", "");
  return w;
}

Logs Client::container_logs(const std::string& id) {
  Logs logs;
  detail::FrameDemux demux(logs);
  auto req = get("/containers/" + id + "/logs?stdout=1&stderr=1");
  req.on_data = [&](std::string_view c) { demux.feed(c); return true; };
  http_ok(ep_, req);
  return logs;
}

void Client::remove_container(const std::string& id) {
  auto r = http(ep_, {.method = "DELETE", .path = "/containers/" + id + "?force=1&v=1"});
  if (r.status >= 400 && r.status != 404)
    throw ApiError(static_cast<int>(r.status), "remove " + id + ": " + r.message());
}

// ---- push ----

namespace {

PushResult push_once(const Endpoint& ep, const std::string& name, const std::string& tag,
                     const std::string& registry_auth, const LogSink& log) {
  // The header is built here and nowhere else; it never reaches `log`.
  HttpRequest req = post("/images/" + name + "/push?tag=" + url_escape(tag));
  req.headers.push_back("X-Registry-Auth: " + (registry_auth.empty() ? "e30" : registry_auth));
  PushResult res;
  detail::JsonSplitter split(
      [&](const json& m) {
        if (m.contains("errorDetail") || m.contains("error")) {
          res.error = value_or<std::string>(m, "error", "");
          if (m.contains("errorDetail") && m["errorDetail"].is_object())
            res.error = value_or<std::string>(m["errorDetail"], "message", res.error);
        }
        if (m.contains("aux") && m["aux"].is_object())
          res.digest = value_or<std::string>(m["aux"], "Digest", res.digest);
        // "<tag>: digest: sha256:... size: N": the form engines without aux send.
        std::string status = value_or<std::string>(m, "status", "");
        if (auto at = status.find("digest: sha256:"); at != std::string::npos && res.digest.empty())
          res.digest = status.substr(at + 8, status.find(' ', at + 8) - (at + 8));
        if (log) log(m.dump());
      },
      [&](std::string_view text) { if (log) log(text); });
  req.on_data = [&](std::string_view c) { split.feed(c); return true; };
  auto r = http(ep, req);
  split.finish();
  if (r.status >= 400) res.error = r.message();
  res.ok = res.error.empty() && !res.digest.empty();
  if (res.error.empty() && res.digest.empty()) res.error = "the engine reported no digest";
  res.transient = !res.ok && transient_push_error(res.error);
  return res;
}

}  // namespace

// The engine reports the registry's failure as text: Docker's distribution
// client says "received unexpected HTTP status: 500 Internal Server Error",
// Go's net package "connection reset by peer", "EOF", "i/o timeout"; Podman
// (containers/image) words them alike. Auth, "not found" and manifest
// errors are not in this list: a retry cannot mend them.
bool transient_push_error(std::string_view e) {
  static const char* kSigns[] = {"unexpected HTTP status: 5", "unexpected HTTP status: 429", "status code 5",
                                 "Internal Server Error", "Bad Gateway", "Service Unavailable", "Gateway Timeout",
                                 "Too Many Requests", "connection reset", "connection refused", "broken pipe",
                                 "EOF", "i/o timeout", "TLS handshake timeout", "transport connection broken",
                                 "server closed", "no route to host"};
  for (const char* s : kSigns)
    if (e.find(s) != std::string_view::npos) return true;
  return false;
}

void Client::pull_image(const std::string& repo, const std::string& ref, const std::string& registry_auth,
                        const LogSink& log) {
  // fromImage + tag: the engine accepts a digest as the tag ("sha256:...").
  HttpRequest req = post("/images/create?fromImage=" + url_escape(repo) + "&tag=" + url_escape(ref));
  req.headers.push_back("X-Registry-Auth: " + (registry_auth.empty() ? "e30" : registry_auth));
  std::string error;
  detail::JsonSplitter split(
      [&](const json& m) {
        if ((m.contains("errorDetail") || m.contains("error")) && error.empty()) {
          error = value_or<std::string>(m, "error", "");
          if (m.contains("errorDetail") && m["errorDetail"].is_object())
            error = value_or<std::string>(m["errorDetail"], "message", error);
        }
        if (log) log(m.dump());
      },
      [&](std::string_view text) { if (log) log(text); });
  req.on_data = [&](std::string_view c) { split.feed(c); return true; };
  auto r = http(ep_, req);
  split.finish();
  if (r.status >= 400) throw ApiError(static_cast<int>(r.status), "pull " + repo + "@" + ref + ": " + r.message());
  if (!error.empty()) throw ApiError(500, "pull " + repo + "@" + ref + ": " + error);  // 200 with an error in the stream
}

PushResult Client::push_image(const std::string& name, const std::string& tag,
                              const std::string& registry_auth, const LogSink& log, const PushRetry& retry) {
  auto backoff = retry.backoff;
  for (int attempt = 1;; ++attempt) {
    PushResult res = push_once(ep_, name, tag, registry_auth, log);
    res.attempts = attempt;
    if (res.ok || !res.transient || attempt >= std::max(1, retry.max_attempts)) return res;
    if (log) log("retry " + std::to_string(attempt) + ": push " + name + ":" + tag + ": " + res.error);
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
}

}  // namespace kiln::engine
