// Runs the graph: `jobs` workers take ready stages (parents done), each on
// its engine; a failure skips the failed stage's dependants only.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>
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

using detail::Choice;
using detail::Graph;
using detail::Need;
using detail::Slot;
using detail::engine_platform;
using detail::may_retry;
using detail::matches;
using detail::no_engine_message;

// Every engine must answer before anything builds (exit 2 otherwise).
std::vector<Slot> check_engines(const Options& o) {
  if (o.engines.empty()) throw EnvironmentError("no engine to build on");
  std::vector<Slot> slots;
  for (const auto& e : o.engines) {
    Slot s{e.name, e.platforms, e.labels, e.backend == matrix::Backend::buildx};
    s.jobs = e.jobs;
    try {
      engine::Client(e.endpoint).ping();
    } catch (const std::exception& ex) {
      throw EnvironmentError(fmt::format("engine '{}': {}", e.name, ex.what()));
    }
    slots.push_back(std::move(s));
  }
  return slots;
}

// An engine's GET /version says its platform (when the runner declares
// none) and whether it is Podman's (which reads RUN --mount). Asked only
// when the plan needs the answer: an arm64 stage, or a RUN --mount stage.
// Otherwise an undeclared engine is taken as linux/amd64, as kiln did before
// engines declared platforms, and an engine that answers /_ping but stalls
// on /version does not hold up a build that never needed it.
void ask_versions(std::vector<Slot>& slots, const Options& o, const Graph& g) {
  bool other_platform = false, run_mounts = false;
  for (const auto& n : g.nodes) {
    other_platform |= n.need.platform != "linux/amd64";
    run_mounts |= n.need.run_mounts;
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    Slot& s = slots[i];
    const bool want_platform = s.platforms.empty() && other_platform;
    if (!want_platform && !run_mounts) {
      if (s.platforms.empty()) s.platforms = {"linux/amd64"};
      continue;
    }
    try {
      auto v = engine::Client(o.engines[i].endpoint).version();
      s.podman = v.podman;
      if (s.platforms.empty()) s.platforms = {engine_platform(v.os, v.arch)};
    } catch (const std::exception& ex) {
      throw EnvironmentError(fmt::format("engine '{}': {}", o.engines[i].name, ex.what()));
    }
  }
}

// The engine whose ledger attempt last built each root for this matrix,
// when that engine is still in use (-1 otherwise): the root goes back there,
// where its image (and its layer cache) is, so a rerun with another --only
// selection or --builder set does not rebuild unchanged stages elsewhere.
std::vector<int> sticky_engines(const Graph& g, const Options& o, const std::string& matrix, const state::Ledger& ledger) {
  std::vector<int> out(g.nodes.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].parent >= 0) continue;
    auto h = ledger.history(g.nodes[i].rendered.id);
    for (auto it = h.rbegin(); it != h.rend(); ++it) {
      if (it->status != state::BuildStatus::built || it->matrix != matrix) continue;
      for (size_t e = 0; e < o.engines.size(); ++e)
        if (o.engines[e].endpoint.uri() == it->engine && (it->runner.empty() || it->runner == o.engines[e].name))
          out[i] = static_cast<int>(e);
      break;
    }
  }
  return out;
}

// What a stage's Dockerfile needs of its engine, refused before anything
// builds (exit 2) when no engine of the run can give it: build secrets only
// through buildx (the engine backend would have to put them in a build arg
// or the context); RUN --mount only where BuildKit or Buildah reads the
// Dockerfile (not Docker's classic builder); and a secret's source present,
// so a build never runs without it. Where some engines can and others
// cannot, the scheduler puts the stage on one that can (Need).
void check_backends(const Graph& g, const Options& o, const std::vector<Slot>& slots) {
  auto any = [&](auto can) { return std::any_of(slots.begin(), slots.end(), can); };
  for (const auto& n : g.nodes) {
    const EngineSpec& e = o.engines.front();
    const render::Rendered& x = n.rendered;
    for (const auto& s : x.secrets) {
      if (!any([](const Slot& s) { return s.buildx; }))
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
    if (x.run_mounts && !any([](const Slot& s) { return s.buildx || s.podman; }))
      throw EnvironmentError(fmt::format(
          "{} uses RUN --mount (a [pip] wheelhouse, or [cache] pip's cache mount), which Docker's classic builder (engine '{}', backend \"engine\") "
          "does not read; use a runner with backend = \"buildx\" (or Podman's engine)", x.id, e.name));
  }
}

// Each root's need merged with its dependants' (they build on its engine).
std::vector<Need> subtree_needs(const Graph& g) {
  std::vector<Need> out;
  for (const auto& n : g.nodes) out.push_back(n.need);
  for (size_t i = g.nodes.size(); i-- > 0;)  // parents come before children: children first here
    if (int p = g.nodes[i].parent; p >= 0) out[p] = merge(out[p], out[i]);
  return out;
}

// Runs the graph over several engines (docs/build.md, "Several engines").
// `jobs` workers; each takes the first ready stage an engine can start now
// (placement.h decides which engine), so -j is the global limit and each
// engine's `jobs` its own. A stage whose engine stops answering is tried
// again elsewhere (Options::retries), the engine is not used again, and a
// stage whose parent image was on it waits while the parent is rebuilt on
// another engine. Stage states only move forward except for those retries,
// each bounded, so the run ends.
class Scheduler {
 public:
  Scheduler(Graph& g, const plan::Plan& p, const Options& o, const EventFn& on_event, std::vector<Slot> slots,
            std::vector<int> sticky)
      : g_(g), p_(p), o_(o), on_event_(on_event), slots_(std::move(slots)), sticky_(std::move(sticky)),
        subtree_(subtree_needs(g)), results_(g.nodes.size()), state_(g.nodes.size(), waiting),
        attempts_(g.nodes.size(), 0), engine_of_(g.nodes.size(), -1), retry_reason_(g.nodes.size()) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      results_[i].id = g.nodes[i].rendered.id;
      results_[i].local_image = g.nodes[i].rendered.local_image;
      if (g.nodes[i].parent < 0) make_ready(static_cast<int>(i));
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
  enum State { waiting, ready, running, done };

  struct Job {
    int node = -1, engine = -1, attempt = 1;
    std::string retry_reason;
    std::optional<StageResult> parent;  // a copy: a rebuild of the parent may replace results_[parent]
  };

  void work() {
    state::Ledger ledger(o_.state_dir + "/state.db");  // one connection per thread
    std::unique_lock lock(m_);
    while (!stop_) {
      if (std::optional<Job> job = pick()) {
        run_job(*job, ledger, lock);
        continue;
      }
      if (ready_.empty() && running_ == 0) break;
      if (running_ == 0) {  // cannot happen (a slot is free when nothing runs); never hang on it
        for (int i : std::deque<int>(std::exchange(ready_, {}))) fail(i, "no engine took it (scheduler)", "");
        continue;
      }
      cv_.wait(lock);
    }
    cv_.notify_all();
  }

  void run_job(const Job& job, state::Ledger& ledger, std::unique_lock<std::mutex>& lock) {
    const detail::Node& n = g_.nodes[job.node];
    ++running_;
    ++slots_[job.engine].running;
    ++slots_[job.engine].started;
    state_[job.node] = running;
    lock.unlock();
    detail::StageContext ctx{n, job.parent ? &*job.parent : nullptr, o_.engines[job.engine], o_, p_.matrix_name,
                             p_.catalog_version, [this](const Event& e) { emit(e); }, job.attempt, job.retry_reason};
    StageResult r = detail::run_stage(ctx, ledger);
    lock.lock();
    --running_;
    --slots_[job.engine].running;
    finish(job, std::move(r));
    cv_.notify_all();
  }

  // The first ready stage an engine can start now; stages no engine can
  // build fail here, and a stage whose parent's engine is down waits for the
  // parent's rebuild.
  std::optional<Job> pick() {
    for (size_t k = 0; k < ready_.size();) {
      int i = ready_[k];
      const detail::Node& n = g_.nodes[i];
      Choice c = n.parent < 0 ? choose_root(slots_, n.need, subtree_[i], sticky_[i])
                              : choose_child(slots_, n.need, engine_of_[n.parent]);
      if (c.kind == Choice::wait) {
        ++k;
        continue;
      }
      ready_.erase(ready_.begin() + static_cast<long>(k));
      if (c.kind == Choice::start) {
        Job job{i, c.engine, ++attempts_[i], retry_reason_[i], std::nullopt};
        if (n.parent >= 0) job.parent = results_[n.parent];
        return job;
      }
      if (c.kind == Choice::none) fail(i, c.why, any_down() ? c.why : "");
      else rebuild_parent(i);
      cv_.notify_all();
    }
    return std::nullopt;
  }

  bool any_down() const {
    return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.down; });
  }

  // i's parent image is on an engine that is down: i waits, and the parent
  // is built again where an engine is up (unless a sibling already asked).
  void rebuild_parent(int i) {
    int p = g_.nodes[i].parent;
    state_[i] = waiting;
    if (state_[p] != done) return;  // already queued or running again
    const Slot& gone = slots_[engine_of_[p]];
    const Need& need = g_.nodes[p].need;
    if (std::none_of(slots_.begin(), slots_.end(), [&](const Slot& e) { return matches(e, need); })) {
      // Nowhere to rebuild it: the parent stays built (where it is), the child fails.
      fail(i, fmt::format("its parent {}'s image is on engine '{}', which stopped answering ({}), and {} for {}",
                          results_[p].id, gone.name, gone.down_reason, no_engine_message(slots_, need), results_[p].id),
           gone.down_reason);
      return;
    }
    if (!may_retry(attempts_[p], o_.retries)) {
      fail(i, fmt::format("its parent {}'s image is on engine '{}', which stopped answering ({}), and {} was already "
                          "built {} times", results_[p].id, gone.name, gone.down_reason, results_[p].id, attempts_[p]),
           gone.down_reason);
      return;
    }
    retry_reason_[p] = fmt::format("its image was on engine '{}', which stopped answering; {} builds on it", gone.name,
                                   results_[i].id);
    emit({Event::retried, results_[p].id, 0, 0, retry_reason_[p], nullptr});
    make_ready(p);
  }

  void make_ready(int i) {
    state_[i] = ready;
    ready_.push_back(i);
  }

  void finish(const Job& job, StageResult r) {
    int i = job.node;
    r.attempts = job.attempt;
    if (!r.environment_error.empty()) {
      Slot& e = slots_[job.engine];
      if (!e.down) {
        e.down = true;
        e.down_reason = r.environment_error;
      }
      if (may_retry(attempts_[i], o_.retries)) {
        retry_reason_[i] = fmt::format("attempt {} on engine '{}' failed: {}", job.attempt, e.name, r.environment_error);
        results_[i] = std::move(r);
        emit({Event::retried, results_[i].id, 0, 0, retry_reason_[i], nullptr});
        make_ready(i);
        return;
      }
    }
    results_[i] = std::move(r);
    state_[i] = done;
    engine_of_[i] = job.engine;
    emit({Event::finished, results_[i].id, 0, 0, "", &results_[i]});
    if (results_[i].outcome == Outcome::failed) {
      after_failure(i);
      return;
    }
    for (int c : g_.nodes[i].children)
      if (state_[c] == waiting) make_ready(c);
  }

  // A stage no engine could take: failed now, its dependants skipped. An
  // environment error (exit 2) when engines going down are why.
  void fail(int i, const std::string& why, const std::string& environment_error) {
    results_[i].outcome = Outcome::failed;
    results_[i].error = why;
    results_[i].environment_error = environment_error;
    results_[i].engine.clear();
    results_[i].attempts = std::max(attempts_[i], 1);
    state_[i] = done;
    emit({Event::finished, results_[i].id, 0, 0, "", &results_[i]});
    after_failure(i);
  }

  void after_failure(int i) {
    skip_descendants(i, fmt::format("not built: {} failed", results_[i].id));
    if (o_.fail_fast) {
      for (int j : ready_) skip(j, fmt::format("not started: --fail-fast after {} failed", results_[i].id));
      ready_.clear();
      stop_ = true;
    }
  }

  void skip(int i, const std::string& why) {
    if (state_[i] == done || state_[i] == running) return;
    results_[i].outcome = Outcome::skipped;
    results_[i].error = why;
    state_[i] = done;
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
  std::vector<Slot> slots_;
  std::vector<int> sticky_;
  std::vector<Need> subtree_;
  std::vector<StageResult> results_;
  std::vector<State> state_;
  std::vector<int> attempts_;   // attempts started, this run
  std::vector<int> engine_of_;  // where its current result was built
  std::vector<std::string> retry_reason_;
  std::deque<int> ready_;
  int running_ = 0;
  bool stop_ = false;
  std::mutex m_, event_m_;
  std::condition_variable cv_;
};

// Stages never reached (fail-fast) end as skipped, and every skip is
// recorded so `kiln status` can say why; so is a failure the scheduler
// decided (no engine could build it: it has no engine), which no build
// attempt recorded.
void record_skips(std::vector<StageResult>& results, const std::string& matrix, const Options& o) {
  state::Ledger ledger(o.state_dir + "/state.db");
  for (auto& r : results) {
    bool unplaced = r.outcome == Outcome::failed && r.engine.empty();
    if (r.outcome != Outcome::skipped && !unplaced) continue;
    if (r.error.empty()) r.error = "not started";
    state::BuildStart start{r.id, std::string(64, '0'), matrix, "", "", ""};
    start.attempt = r.attempts;
    auto id = ledger.start_build(start);
    state::BuildOutcome out;
    out.status = unplaced ? state::BuildStatus::failed : state::BuildStatus::skipped;
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
      // kiln's proxy listens on this machine's 127.0.0.1, where RUN steps on
      // another host's engine would find their own loopback instead.
      for (const auto& e : o.engines)
        if (e.endpoint.transport != engine::Endpoint::Transport::unix_socket)
          throw std::runtime_error("[cache] apt = \"kiln\" runs apt-cacher-ng on this machine's 127.0.0.1, which builds on "
                                   "the engine at " + e.endpoint.uri() + " cannot reach; set [cache] apt to a proxy URL the "
                                   "farm's hosts reach (\"http://HOST:3142\"), or leave [cache] out");
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
  std::vector<Slot> slots = check_engines(options);
  std::unique_ptr<detail::AptCacher> apt_cache;
  const Options o = with_apt_cache(p, detail::resolve_builders(options, p), apt_cache);  // named buildx builders
  Graph g = detail::make_graph(p, r, o);
  ask_versions(slots, o, g);
  std::vector<int> sticky;
  {
    state::Ledger ledger(o.state_dir + "/state.db");
    ledger.recover();  // attempts of a killed kiln become `interrupted`
    sticky = sticky_engines(g, o, p.matrix_name, ledger);
    check_backends(g, o, slots);
    for (const auto& n : g.nodes) {
      std::vector<std::string> chain;
      for (int i = static_cast<int>(&n - g.nodes.data()); i >= 0; i = g.nodes[i].parent)
        chain.insert(chain.begin(), g.nodes[i].rendered.id);
      ledger.record_combo(p.matrix_name, n.rendered.id, chain);
    }
  }
  for (const auto& n : g.nodes) on_event({Event::queued, n.rendered.id, 0, 0, "", nullptr});
  Report report{Scheduler(g, p, o, on_event, std::move(slots), std::move(sticky)).run()};
  record_skips(report.stages, p.matrix_name, o);
  return report;
}

}  // namespace kiln::build
