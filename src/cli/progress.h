// Build progress for people and logs: on a terminal one live line per
// running build (step n/m, elapsed), redrawn in place; otherwise plain
// lines; nothing in quiet mode (JSON output). Then a summary table.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "build/build.h"

namespace kiln::cli {

class Progress {
 public:
  enum class Mode { live, plain, quiet };
  explicit Progress(Mode mode) : mode_(mode) {}
  void on(const build::Event& e);
  void close();  // clears the live lines

 private:
  struct Running {
    std::chrono::steady_clock::time_point since;
    int step = 0, total = 0;
    std::string line;
  };
  void redraw();
  void print_above(const std::string& text);
  std::string finished_line(const build::StageResult& r) const;

  Mode mode_;
  std::map<std::string, Running> running_;
  size_t drawn_ = 0;  // live lines currently on screen
  size_t queued_ = 0, finished_ = 0;
};

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
