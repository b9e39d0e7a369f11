// POST /build: the engine's own builder (the classic one on Docker 20.10,
// Buildah on Podman). The reply is NDJSON and is 200 even when the build
// fails, so success is decided from the stream: an aux.ID and no error.
#include "engine/internal.h"

#include <chrono>

namespace kiln::engine {

using nlohmann::json;

namespace {

std::string build_query(const BuildRequest& r) {
  using detail::url_escape;
  std::string q = "/build?dockerfile=" + url_escape(r.dockerfile) + "&rm=1&forcerm=1&pull=0";
  for (const auto& t : r.tags) q += "&t=" + url_escape(t);
  if (!r.build_args.empty()) q += "&buildargs=" + url_escape(json(r.build_args).dump());
  if (!r.labels.empty()) q += "&labels=" + url_escape(json(r.labels).dump());
  if (!r.target.empty()) q += "&target=" + url_escape(r.target);
  if (r.no_cache) q += "&nocache=1";
  if (!r.network.empty()) q += "&networkmode=" + url_escape(r.network);
  if (!r.platform.empty()) q += "&platform=" + url_escape(r.platform);
  return q;
}

// Follows one build's stream: lines to the log, steps to progress, the id
// and the error to the result.
class BuildStream {
 public:
  BuildStream(BuildResult& res, const ProgressFn& progress, const LogSink& log)
      : res_(res), progress_(progress), log_(log),
        lines_([this](std::string_view l) { on_line(l); }),
        split_([this](const json& m) { on_message(m); }, [this](std::string_view t) { emit(t); }) {}

  void feed(std::string_view bytes) { split_.feed(bytes); }
  void finish() {
    split_.finish();
    lines_.finish();
  }
  const std::string& step() const { return step_; }

 private:
  void emit(std::string_view line) {
    if (log_) log_(line);
  }
  void on_line(std::string_view raw) {
    std::string line = detail::strip_ansi(raw);
    emit(line);
    int n = 0, m = 0;
    if (detail::parse_step(line, n, m)) {
      step_ = line;
      if (progress_) progress_(n, m, line);
    }
  }
  void on_message(const json& m) {
    if (auto s = m.find("stream"); s != m.end() && s->is_string()) lines_.feed(s->get<std::string>());
    if (auto a = m.find("aux"); a != m.end() && a->is_object() && a->contains("ID"))
      res_.image_id = (*a)["ID"].get<std::string>();
    if (auto s = m.find("status"); s != m.end() && s->is_string()) emit(s->get<std::string>());
    if (m.contains("error") || m.contains("errorDetail")) on_error(m);
  }
  void on_error(const json& m) {
    lines_.finish();  // the step's last output before the error
    std::string msg = m.value("error", "");
    if (auto d = m.find("errorDetail"); d != m.end() && d->is_object())
      msg = d->value("message", msg);
    res_.error = msg;
    emit("ERROR: " + msg);
  }

  BuildResult& res_;
  const ProgressFn& progress_;
  const LogSink& log_;
  std::string step_;
  detail::LineAssembler lines_;
  detail::JsonSplitter split_;
};

// One build; throws for what is not a build failure (Unreachable, an unreadable context).
void build_into(Client& c, const BuildRequest& req, const ProgressFn& progress, const LogSink& log,
                BuildResult& res) {
  detail::ContextTar tar(req.context_dir);
  BuildStream stream(res, progress, log);
  detail::HttpRequest http{.method = "POST",
                           .path = build_query(req),
                           .headers = {"Content-Type: application/x-tar"},
                           .body_reader = [&](char* b, std::size_t n) { return tar.read(b, n); },
                           .on_data = [&](std::string_view c) { stream.feed(c); return true; }};
  auto r = detail::http(c.endpoint(), http);
  stream.finish();
  if (r.status >= 400) res.error = r.message();  // e.g. "Cannot locate specified Dockerfile"
  if (!res.error.empty()) {
    res.failed_step = stream.step();
    res.image_id.clear();
  } else if (res.image_id.empty() && !req.tags.empty()) {
    // An engine that sends no aux.ID (older Podman): the tag tells.
    if (auto info = c.inspect_image(req.tags.front())) res.image_id = info->id;
  }
  if (res.error.empty() && res.image_id.empty()) res.error = "the engine reported no image id";
}

class EngineBuilder final : public Builder {
 public:
  explicit EngineBuilder(Endpoint ep) : client_(std::move(ep)) {}
  std::string name() const override { return "engine"; }
  BuildResult build(const BuildRequest& req, const ProgressFn& progress, const LogSink& log) override {
    return client_.build(req, progress, log);
  }

 private:
  Client client_;
};

}  // namespace

BuildResult Client::build(const BuildRequest& req, const ProgressFn& progress, const LogSink& log) {
  // POST /build has no way to pass a secret without writing it into a
  // build arg or the context (and so into the image or its history).
  if (!req.secrets.empty())
    throw SecretsUnsupported("the engine backend (POST /build: Docker's classic builder, Podman's compatible API) "
                             "cannot pass build secret '" + req.secrets.front().id +
                             "'; build this matrix on a runner with backend = \"buildx\"");
  auto t0 = std::chrono::steady_clock::now();
  BuildResult res;
  try {
    build_into(*this, req, progress, log, res);
  } catch (const Unreachable&) {
    throw;
  } catch (const std::runtime_error& e) {  // an unreadable context: this build fails, not kiln
    res.error = e.what();
    res.image_id.clear();
  }
  res.ok = res.error.empty();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

namespace detail {
std::unique_ptr<Builder> make_engine_builder(const Endpoint& ep) {
  return std::make_unique<EngineBuilder>(ep);
}
}  // namespace detail

std::unique_ptr<Builder> make_builder(std::string_view name, const Endpoint& ep,
                                      const BuildxOptions& buildx) {
  if (name == "engine") return detail::make_engine_builder(ep);
  if (name == "buildx") return detail::make_buildx_builder(ep, buildx);
  throw std::invalid_argument("unknown builder \"" + std::string(name) + "\" (engine, buildx)");
}

}  // namespace kiln::engine
