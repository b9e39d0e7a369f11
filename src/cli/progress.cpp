#include "cli/progress.h"
#include "util/table.h"

#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "state/ledger.h"

namespace kiln::cli {

namespace {
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
std::string clip(std::string s, size_t n) {
  if (s.size() > n) s = s.substr(0, n - 1) + "…";
  return s;
}
std::string minutes(double s) {
  const long t = std::lround(s);  // whole seconds first: 899.9 s is 15m00s, not 14m60s
  return t < 60 ? fmt::format("{}s", t) : fmt::format("{}m{:02}s", t / 60, t % 60);
}
}  // namespace

Progress::Progress(Mode mode, Estimate estimate) : Progress(mode, std::move(estimate), std::cerr, Clock{}) {}

Progress::Progress(Mode mode, Estimate estimate, std::ostream& out, Clock clock)
    : mode_(mode), estimate_(std::move(estimate)), out_(out), clock_(clock) {
  if (mode_ != Mode::quiet) ticker_ = std::thread([this] { tick(); });
}

Progress::~Progress() { close(); }

// The clock: without it the screen only changes on an event, and a RUN step
// or a smoke run can take many minutes without one.
void Progress::tick() {
  std::unique_lock lock(mu_);
  const auto period = mode_ == Mode::live ? clock_.live_tick : clock_.plain_tick;
  while (!wake_.wait_for(lock, period, [this] { return stop_; })) {
    if (mode_ == Mode::live) {
      redraw();
      continue;
    }
    for (const auto& [id, r] : running_)
      out_ << fmt::format("        still building {} ({}, step {}/{})\n", id, minutes(since(r.since)), r.step, r.total);
    if (!step_.empty()) out_ << fmt::format("        still: {} ({})\n", step_, minutes(since(step_since_)));
    out_ << std::flush;
  }
}

std::string Progress::finished_line(const build::StageResult& r) const {
  switch (r.outcome) {
    case build::Outcome::built:
      return fmt::format("built   {} in {:.1f}s ({})", r.id, r.seconds, r.image_id.substr(0, 19));
    case build::Outcome::cached:
      return fmt::format("cached  {} (unchanged, {})", r.id, r.image_id.substr(0, 19));
    case build::Outcome::failed:
      return fmt::format("FAILED  {}{}: {}{}", r.id, r.failed_step.empty() ? "" : " at \"" + clip(r.failed_step, 60) + "\"",
                         r.error, r.log_path.empty() ? "" : " (log: " + r.log_path + ")");
    case build::Outcome::skipped:
      return fmt::format("skipped {}: {}", r.id, r.error);
  }
  return r.id;
}

void Progress::on(const build::Event& e) {
  if (mode_ == Mode::quiet) return;
  std::lock_guard lock(mu_);
  switch (e.kind) {
    case build::Event::queued:
      ++queued_;
      expected_[e.id] = estimate_ ? estimate_(e.id) : std::nullopt;
      return;
    case build::Event::started:
      running_[e.id] = {std::chrono::steady_clock::now(), 0, 0, ""};
      if (mode_ == Mode::plain) out_ << "start   " << e.id << '\n';
      break;
    case build::Event::progressed: {
      auto& r = running_[e.id];
      if (e.total > 0) {
        r.step = e.step;
        r.total = e.total;
        r.line = e.line;
        if (mode_ == Mode::plain) out_ << fmt::format("        {} step {}/{}: {}\n", e.id, e.step, e.total, clip(e.line, 100));
      }
      break;
    }
    case build::Event::retried:  // back in the queue: its engine stopped answering
      running_.erase(e.id);
      print_above(fmt::format("retry   {}: {}", e.id, e.line));
      break;
    case build::Event::finished:
      ++finished_;
      running_.erase(e.id);
      expected_.erase(e.id);
      print_above(fmt::format("[{}/{}] {}", finished_, queued_, finished_line(*e.result)));
      break;
  }
  if (mode_ == Mode::live) redraw();
}

void Progress::step(const std::string& what) {
  if (mode_ == Mode::quiet) return;
  std::lock_guard lock(mu_);
  step_ = what;
  step_since_ = std::chrono::steady_clock::now();
  if (mode_ == Mode::plain) out_ << "        " << what << '\n' << std::flush;
  else redraw();
}

void Progress::clear() {
  for (size_t i = 0; i < drawn_; ++i) out_ << "\033[1A\033[2K";
  drawn_ = 0;
}

void Progress::print_above(const std::string& text) {
  if (mode_ == Mode::live) clear();
  out_ << text << '\n';
}

// "[#####.....] 3/8 done, 2 running, ETA ~4m10s": the ETA is what the
// unfinished stages took when last built, spread over the builds running now;
// stages never built before are counted, not guessed.
std::string Progress::overall() const {
  constexpr int width = 24;
  const int filled = queued_ ? int(width * finished_ / queued_) : 0;
  std::string line = fmt::format("[{}{}] {}/{} done, {} running", std::string(filled, '#'), std::string(width - filled, '.'),
                                 finished_, queued_, running_.size());
  double left = 0;
  size_t unknown = 0;
  for (const auto& [id, secs] : expected_) {
    if (!secs) {
      ++unknown;
      continue;
    }
    auto r = running_.find(id);
    left += r == running_.end() ? *secs : std::max(0.0, *secs - since(r->second.since));
  }
  if (unknown == expected_.size()) return line;
  line += fmt::format(", ETA ~{} from past builds", minutes(left / double(std::max<size_t>(1, running_.size()))));
  if (unknown) line += fmt::format(" (+{} never built)", unknown);
  return line;
}

void Progress::redraw() {
  clear();
  auto put = [&](const std::string& line) {
    out_ << line << '\n';
    ++drawn_;
  };
  for (const auto& [id, r] : running_) {
    std::string step = r.total ? fmt::format("step {}/{}", r.step, r.total) : "starting";
    put(fmt::format("  {} {:<10} {:>6.0f}s  {}", clip(id, 40), step, since(r.since), clip(r.line, 60)));
  }
  if (queued_ > 1 && finished_ < queued_) put("  " + overall());
  if (!step_.empty()) put(fmt::format("  {} {:>6.0f}s", clip(step_, 90), since(step_since_)));
  out_ << std::flush;
}

void Progress::close() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
    if (mode_ == Mode::live) clear();
    out_ << std::flush;
  }
  wake_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

Progress::Estimate past_build_times(const std::string& state_dir) {
  const std::string db = state_dir + "/state.db";
  if (!std::filesystem::exists(db)) return {};
  auto ledger = std::make_shared<state::Ledger>(db);
  return [ledger](const std::string& stage_id) -> std::optional<double> {
    auto history = ledger->history(stage_id);
    for (auto it = history.rbegin(); it != history.rend(); ++it)
      if (it->status == state::BuildStatus::built && it->seconds) return *it->seconds;
    return std::nullopt;
  };
}

LayerProgress::LayerProgress(Progress::Mode mode, std::string what) : mode_(mode), what_(std::move(what)) {}

void LayerProgress::update(std::size_t done, std::size_t total, std::uint64_t bytes, std::size_t cached) {
  const auto now = std::chrono::steady_clock::now();
  if (mode_ == Progress::Mode::quiet || now - since_ < std::chrono::seconds(1)) return;
  // A terminal: ten redraws a second at most, and at each new layer; a log:
  // a line every 10 s at most.
  const auto every = mode_ == Progress::Mode::live ? std::chrono::milliseconds(100) : std::chrono::milliseconds(10'000);
  const bool new_layer = mode_ == Progress::Mode::live && done != last_done_;
  if (printed_.time_since_epoch().count() && now - printed_ < every && !new_layer) return;
  printed_ = now;
  last_done_ = done;
  std::string line = fmt::format("{}: layer {}/{}", clip(what_, 80), std::min(done + 1, total), total);
  if (bytes) line += fmt::format(", {:.1f} MB of files read", double(bytes) / 1e6);
  if (cached) line += fmt::format(", {} from cache", cached);
  line += fmt::format(", {:.0f} s", since(since_));
  if (mode_ == Progress::Mode::live) {
    std::cerr << "\r\033[2K" << line << std::flush;
    drawn_ = true;
  } else {
    std::cerr << line << '\n';
  }
}

void LayerProgress::close() {
  if (drawn_) std::cerr << "\r\033[2K" << std::flush;
  drawn_ = false;
}

std::string summary_table(const build::Report& r) {
  Table t({"COMBINATION", "RESULT", "ENGINE", "SECONDS", "IMAGE / WHY"});
  t.align_right(3);
  for (const auto& s : r.stages) {
    std::string detail = s.image_id.substr(0, 19);
    if (s.outcome == build::Outcome::failed)
      detail = fmt::format("{}{} (log: {})", s.failed_step.empty() ? "" : "\"" + clip(s.failed_step, 50) + "\": ", clip(s.error, 120), s.log_path);
    if (s.outcome == build::Outcome::skipped) detail = s.error;
    t.add_row({s.id, build::to_string(s.outcome), s.engine, fmt::format("{:.1f}", s.seconds), detail});
  }
  return "\n" + t.str() + fmt::format("\n{} built, {} unchanged, {} failed, {} skipped\n", r.count(build::Outcome::built),
                                      r.count(build::Outcome::cached), r.count(build::Outcome::failed), r.count(build::Outcome::skipped)) +
         build::sizes_text(r);
}

}  // namespace kiln::cli
