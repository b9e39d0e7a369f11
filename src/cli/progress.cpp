#include "cli/progress.h"

#include <iostream>

#include <fmt/format.h>

namespace kiln::cli {

namespace {
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
std::string clip(std::string s, size_t n) {
  if (s.size() > n) s = s.substr(0, n - 1) + "…";
  return s;
}
}  // namespace

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
  switch (e.kind) {
    case build::Event::queued:
      ++queued_;
      return;
    case build::Event::started:
      running_[e.id] = {std::chrono::steady_clock::now(), 0, 0, ""};
      if (mode_ == Mode::plain) std::cerr << "start   " << e.id << '\n';
      break;
    case build::Event::progressed: {
      auto& r = running_[e.id];
      if (e.total > 0) {
        r.step = e.step;
        r.total = e.total;
        r.line = e.line;
        if (mode_ == Mode::plain) std::cerr << fmt::format("        {} step {}/{}: {}\n", e.id, e.step, e.total, clip(e.line, 100));
      }
      break;
    }
    case build::Event::finished:
      ++finished_;
      running_.erase(e.id);
      print_above(fmt::format("[{}/{}] {}", finished_, queued_, finished_line(*e.result)));
      break;
  }
  if (mode_ == Mode::live) redraw();
}

void Progress::print_above(const std::string& text) {
  if (mode_ == Mode::live) {
    for (size_t i = 0; i < drawn_; ++i) std::cerr << "\033[1A\033[2K";
    drawn_ = 0;
  }
  std::cerr << text << '\n';
}

void Progress::redraw() {
  for (size_t i = 0; i < drawn_; ++i) std::cerr << "\033[1A\033[2K";
  drawn_ = 0;
  for (const auto& [id, r] : running_) {
    std::string step = r.total ? fmt::format("step {}/{}", r.step, r.total) : "starting";
    std::cerr << fmt::format("  {} {:<10} {:>6.0f}s  {}\n", clip(id, 40), step, since(r.since), clip(r.line, 60));
    ++drawn_;
  }
  std::cerr << std::flush;
}

void Progress::close() {
  if (mode_ != Mode::live) return;
  for (size_t i = 0; i < drawn_; ++i) std::cerr << "\033[1A\033[2K";
  drawn_ = 0;
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
  std::string out = fmt::format("\n{:<36} {:<8} {:<10} {:>8}  {}\n", "COMBINATION", "RESULT", "ENGINE", "SECONDS", "IMAGE / WHY");
  for (const auto& s : r.stages) {
    std::string detail = s.image_id.substr(0, 19);
    if (s.outcome == build::Outcome::failed)
      detail = fmt::format("{}{} (log: {})", s.failed_step.empty() ? "" : "\"" + clip(s.failed_step, 50) + "\": ", clip(s.error, 120), s.log_path);
    if (s.outcome == build::Outcome::skipped) detail = s.error;
    out += fmt::format("{:<36} {:<8} {:<10} {:>8.1f}  {}\n", s.id, build::to_string(s.outcome), s.engine, s.seconds, detail);
  }
  out += fmt::format("\n{} built, {} unchanged, {} failed, {} skipped\n", r.count(build::Outcome::built),
                     r.count(build::Outcome::cached), r.count(build::Outcome::failed), r.count(build::Outcome::skipped));
  return out + build::sizes_text(r);
}

}  // namespace kiln::cli
