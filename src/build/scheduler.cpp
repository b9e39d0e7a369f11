// Runs the graph: `jobs` workers take ready stages (parents done), each on
// its engine; a failure skips the failed stage's dependants only.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "build/apt_cache.h"
#include "build/internal.h"
#include "build/stage.h"
#include "state/ledger.h"
#include "util/table.h"

namespace kiln::build {

const char* to_string(Outcome o) {
  switch (o) {
    case Outcome::built: return "built";
    case Outcome::cached: return "cached";
    case Outcome::failed: return "failed";
    case Outcome::skipped: return "skipped";
  }
  return "?";
}

size_t Report::count(Outcome o) const {
  return static_cast<size_t>(std::count_if(stages.begin(), stages.end(), [&](const StageResult& s) { return s.outcome == o; }));
}

std::string Report::environment_error() const {
  for (const auto& s : stages)
    if (!s.environment_error.empty()) return s.environment_error;
  return "";
}

namespace {

using detail::Graph;

void check_engines(const Options& o) {
  if (o.engines.empty()) throw EnvironmentError("no engine to build on");
  for (const auto& e : o.engines) {
    try {
      engine::Client(e.endpoint).ping();
    } catch (const std::exception& ex) {
      throw EnvironmentError(fmt::format("engine '{}': {}", e.name, ex.what()));
    }
  }
}

// A root goes back to the engine that last built it for this matrix, where
// its image (and its layer cache) is, when that engine is still in use:
// otherwise a rerun with another --only selection or --builder set would
// shift the round-robin and rebuild unchanged stages on another engine.
// The other roots go round-robin over the engines; a child stays on its
// parent's engine, where the parent image is.
void assign_engines(Graph& g, const Options& o, const std::string& matrix, const state::Ledger& ledger) {
  auto last_engine = [&](const std::string& stage) {
    auto h = ledger.history(stage);
    for (auto it = h.rbegin(); it != h.rend(); ++it) {
      if (it->status != state::BuildStatus::built || it->matrix != matrix) continue;
      for (size_t e = 0; e < o.engines.size(); ++e)
        if (o.engines[e].endpoint.uri() == it->engine) return static_cast<int>(e);
      return -1;
    }
    return -1;
  };
  size_t next = 0;
  for (auto& n : g.nodes) {
    if (n.parent >= 0) n.engine = g.nodes[n.parent].engine;
    else if (int e = last_engine(n.rendered.id); e >= 0) n.engine = e;
    else n.engine = static_cast<int>(next++ % o.engines.size());
  }
}

// What a stage's Dockerfile needs of its engine, refused before anything
// builds (exit 2): build secrets only through buildx (the engine backend
// would have to put them in a build arg or the context); RUN --mount only
// where BuildKit or Buildah reads the Dockerfile (not Docker's classic
// builder); and a secret's source present, so a build never runs without it.
void check_backends(const Graph& g, const Options& o) {
  std::map<int, bool> podman;
  for (const auto& n : g.nodes) {
    const EngineSpec& e = o.engines[n.engine];
    const render::Rendered& x = n.rendered;
    for (const auto& s : x.secrets) {
      if (e.backend != matrix::Backend::buildx)
        throw EnvironmentError(fmt::format(
            "{} needs build secret '{}' ([pip] secret), and engine '{}' builds with backend \"{}\" (POST /build), which "
            "cannot pass a secret without writing it into a build argument or the build context; use a runner with "
            "backend = \"buildx\"", x.id, s.id, e.name, matrix::to_string(e.backend)));
      if (!s.env.empty() && !std::getenv(s.env.c_str()))
        throw EnvironmentError(fmt::format("{} needs build secret '{}' from environment variable {}, which is not set",
                                           x.id, s.id, s.env));
      if (!s.file.empty() && access(s.file.c_str(), R_OK) != 0)
        throw EnvironmentError(fmt::format("{} needs build secret '{}' from file {}, which cannot be read", x.id, s.id,
                                           s.file));
    }
    if (x.run_mounts && e.backend == matrix::Backend::engine) {
      if (!podman.count(n.engine)) podman[n.engine] = engine::Client(e.endpoint).version().podman;
      if (!podman[n.engine])
        throw EnvironmentError(fmt::format(
            "{} uses RUN --mount (a [pip] wheelhouse, or [cache] pip's cache mount), which Docker's classic builder (engine '{}', backend \"engine\") "
            "does not read; use a runner with backend = \"buildx\" (or Podman's engine)", x.id, e.name));
    }
  }
}

class Scheduler {
 public:
  Scheduler(Graph& g, const plan::Plan& p, const Options& o, const EventFn& on_event)
      : g_(g), p_(p), o_(o), on_event_(on_event), results_(g.nodes.size()), done_(g.nodes.size(), false) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      results_[i].id = g.nodes[i].rendered.id;
      results_[i].local_image = g.nodes[i].rendered.local_image;
      results_[i].engine = o.engines[g.nodes[i].engine].name;
      if (g.nodes[i].parent < 0) ready_.push_back(static_cast<int>(i));
    }
  }

  std::vector<StageResult> run() {
    size_t workers = std::clamp<size_t>(static_cast<size_t>(std::max(o_.jobs, 1)), 1, std::max<size_t>(g_.nodes.size(), 1));
    std::vector<std::thread> threads;
    std::vector<std::exception_ptr> errors(workers);
    for (size_t w = 0; w < workers; ++w)
      threads.emplace_back([this, w, &errors] {
        try {
          work();
        } catch (...) {
          errors[w] = std::current_exception();
          std::lock_guard lock(m_);
          stop_ = true;
          cv_.notify_all();
        }
      });
    for (auto& t : threads) t.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    return results_;
  }

 private:
  void work() {
    state::Ledger ledger(o_.state_dir + "/state.db");  // one connection per thread
    std::unique_lock lock(m_);
    while (true) {
      cv_.wait(lock, [&] { return !ready_.empty() || running_ == 0 || stop_; });
      if (stop_ || ready_.empty()) {
        if (running_ == 0 || stop_) break;
        continue;
      }
      int i = ready_.front();
      ready_.pop_front();
      ++running_;
      const detail::Node& n = g_.nodes[i];
      detail::StageContext ctx{n, n.parent >= 0 ? &results_[n.parent] : nullptr, o_.engines[n.engine], o_,
                               p_.matrix_name, p_.catalog_version, [this](const Event& e) { emit(e); }};
      lock.unlock();
      StageResult r = detail::run_stage(ctx, ledger);
      lock.lock();
      finish(i, std::move(r));
      --running_;
      cv_.notify_all();
    }
    cv_.notify_all();
  }

  void finish(int i, StageResult r) {
    results_[i] = std::move(r);
    done_[i] = true;
    emit({Event::finished, results_[i].id, 0, 0, "", &results_[i]});
    if (results_[i].outcome == Outcome::failed) {
      skip_descendants(i, fmt::format("not built: {} failed", results_[i].id));
      if (o_.fail_fast) {
        for (int j : ready_) skip(j, fmt::format("not started: --fail-fast after {} failed", results_[i].id));
        ready_.clear();
        stop_ = true;
      }
      return;
    }
    for (int c : g_.nodes[i].children) ready_.push_back(c);
  }

  void skip(int i, const std::string& why) {
    if (done_[i]) return;
    results_[i].outcome = Outcome::skipped;
    results_[i].error = why;
    done_[i] = true;
    emit({Event::finished, results_[i].id, 0, 0, "", &results_[i]});
    skip_descendants(i, fmt::format("not built: {} was skipped", results_[i].id));
  }

  void skip_descendants(int i, const std::string& why) {
    for (int c : g_.nodes[i].children) skip(c, why);
  }

  void emit(const Event& e) {
    std::lock_guard lock(event_m_);
    if (on_event_) on_event_(e);
  }

  Graph& g_;
  const plan::Plan& p_;
  const Options& o_;
  const EventFn& on_event_;
  std::vector<StageResult> results_;
  std::vector<bool> done_;
  std::deque<int> ready_;
  int running_ = 0;
  bool stop_ = false;
  std::mutex m_, event_m_;
  std::condition_variable cv_;
};

// Stages never reached (fail-fast) end as skipped, and every skip is
// recorded so `kiln status` can say why.
void record_skips(std::vector<StageResult>& results, const std::string& matrix, const Options& o) {
  state::Ledger ledger(o.state_dir + "/state.db");
  for (auto& r : results) {
    if (r.outcome != Outcome::skipped) continue;
    if (r.error.empty()) r.error = "not started";
    auto id = ledger.start_build({r.id, std::string(64, '0'), matrix, "", "", ""});
    state::BuildOutcome out;
    out.status = state::BuildStatus::skipped;
    out.error = r.error;
    ledger.finish_build(id, out);
  }
}

// [cache] apt: the proxy the stages' apt steps use, started here when kiln
// runs it (stopped when `cache` goes), checked when it is the matrix's own.
// Either failing is the environment's problem (exit 2), before any build.
Options with_apt_cache(const plan::Plan& p, Options o, std::unique_ptr<detail::AptCacher>& cache) {
  try {
    if (p.cache.apt == "kiln") {
      cache = detail::AptCacher::start(o.state_dir + "/apt-cache");
      o.apt_proxy = cache->url();
    } else if (!p.cache.apt.empty()) {
      detail::check_proxy_answers(p.cache.apt);
      o.apt_proxy = p.cache.apt;
    }
  } catch (const std::runtime_error& e) {
    throw EnvironmentError(e.what());
  }
  return o;
}

}  // namespace

std::string human_size(std::int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return v < 10 ? fmt::format("{:.2f} {}", v, units[u]) : fmt::format("{:.0f} {}", v, units[u]);
}

namespace {
// A history entry's instruction, short: "RUN set -eux; . /etc/os-release; ...".
// The classic builder writes "|1 APT_PROXY=... /bin/sh -c CMD", BuildKit
// "RUN |1 APT_PROXY=... /bin/sh -c CMD": only CMD is kept.
std::string instruction(const std::string& created_by, size_t width) {
  std::string s = created_by;
  if (auto at = s.find("/bin/sh -c "); at != std::string::npos) s = "RUN " + s.substr(at + 11);
  for (auto& ch : s)
    if (ch == '\n' || ch == '\t') ch = ' ';
  for (auto at = s.find("  "); at != std::string::npos; at = s.find("  ")) s.erase(at, 1);
  if (s.size() > width) s = s.substr(0, width - 3) + "...";
  return s;
}
}  // namespace

std::string layer_line(const engine::HistoryEntry& l, size_t width) {
  std::string what = l.created_by.empty() ? "(a layer of the base image)" : instruction(l.created_by, width);
  return human_size(l.size) + "  " + what;
}

std::string sizes_text(const Report& r) {
  Table t({"IMAGE", "SIZE"});
  t.align_right(1);
  for (const auto& s : r.stages) {
    if (s.size <= 0) continue;
    t.add_row({s.id, human_size(s.size)});
    for (const auto& l : s.largest_layers) t.add_note(layer_line(l));
  }
  return t.empty() ? "" : "\nIMAGE SIZE (largest layers under each)\n" + t.str();
}

void add_size_json(const StageResult& s, nlohmann::json& stage) {
  stage["size"] = s.size;
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : s.largest_layers) layers.push_back({{"size", l.size}, {"created_by", l.created_by}});
  stage["largest_layers"] = layers;
}

Report build_plan(const plan::Plan& p, const render::Renderer& r, const Options& options, const EventFn& on_event) {
  check_engines(options);
  std::unique_ptr<detail::AptCacher> apt_cache;
  const Options o = with_apt_cache(p, options, apt_cache);
  Graph g = detail::make_graph(p, r, o);
  {
    state::Ledger ledger(o.state_dir + "/state.db");
    ledger.recover();  // attempts of a killed kiln become `interrupted`
    assign_engines(g, o, p.matrix_name, ledger);
    check_backends(g, o);
    for (const auto& n : g.nodes) {
      std::vector<std::string> chain;
      for (int i = static_cast<int>(&n - g.nodes.data()); i >= 0; i = g.nodes[i].parent)
        chain.insert(chain.begin(), g.nodes[i].rendered.id);
      ledger.record_combo(p.matrix_name, n.rendered.id, chain);
    }
  }
  for (const auto& n : g.nodes) on_event({Event::queued, n.rendered.id, 0, 0, "", nullptr});
  Report report{Scheduler(g, p, o, on_event).run()};
  record_skips(report.stages, p.matrix_name, o);
  return report;
}

}  // namespace kiln::build
