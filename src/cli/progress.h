// Progress for people and logs. On a terminal: one live line per running
// build (step n/m, elapsed), an overall bar with an ETA taken from the
// ledger's past build times, and the verify/promote step under way, all
// redrawn once a second so the clock moves during a long RUN step or smoke
// run. In a log: plain lines, and a "still running" line every 30 s. Nothing
// in quiet mode (JSON output). Then a summary table.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "build/build.h"

namespace kiln::cli {

class Progress {
 public:
  enum class Mode { live, plain, quiet };
  // Seconds a stage took when last built, if it ever was (the ETA's input).
  using Estimate = std::function<std::optional<double>(const std::string& stage_id)>;
  struct Clock {
    std::chrono::milliseconds live_tick{1000};    // redraw period on a terminal
    std::chrono::milliseconds plain_tick{30'000};  // "still running" period in a log
  };

  explicit Progress(Mode mode, Estimate estimate = {});
  Progress(Mode mode, Estimate estimate, std::ostream& out, Clock clock);  // tests: another stream, faster clock
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void on(const build::Event& e);
  // A step after the builds ("gpu check ID on RUNNER"): shown with its
  // elapsed time until the next step or close().
  void step(const std::string& what);
  void close();  // clears the live lines, stops the clock

 private:
  struct Running {
    std::chrono::steady_clock::time_point since;
    int step = 0, total = 0;
    std::string line;
  };
  void tick();
  void redraw();  // caller holds mu_
  void print_above(const std::string& text);  // caller holds mu_
  void clear();  // caller holds mu_
  std::string overall() const;  // caller holds mu_
  std::string finished_line(const build::StageResult& r) const;

  Mode mode_;
  Estimate estimate_;
  std::ostream& out_;
  Clock clock_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread ticker_;
  std::map<std::string, Running> running_;
  std::map<std::string, std::optional<double>> expected_;  // every queued stage not finished yet
  std::string step_;
  std::chrono::steady_clock::time_point step_since_;
  size_t drawn_ = 0;  // live lines currently on screen
  size_t queued_ = 0, finished_ = 0;
};

// Estimate from the ledger in STATE_DIR: the seconds of each stage's latest
// successful build. Empty (no ETA) when the directory has no ledger yet.
Progress::Estimate past_build_times(const std::string& state_dir);

std::string summary_table(const build::Report& r);

// One image's layers being read (kiln audit, check-driver): nothing for the
// first second; then on a terminal one line redrawn in place ("IMAGE: layer
// 3/7, 1.2 GB read, 2 from cache, 4 s"), cleared when done; otherwise a
// plain line at most every 10 s.
class LayerProgress {
 public:
  LayerProgress(Progress::Mode mode, std::string what);
  ~LayerProgress() { close(); }
  void update(std::size_t done, std::size_t total, std::uint64_t bytes, std::size_t cached);
  void close();

 private:
  Progress::Mode mode_;
  std::string what_;
  std::chrono::steady_clock::time_point since_ = std::chrono::steady_clock::now(), printed_{};
  std::size_t last_done_ = SIZE_MAX;
  bool drawn_ = false;
};

}  // namespace kiln::cli
