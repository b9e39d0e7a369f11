// The progress display: redrawn by its clock (not only by events), an
// overall bar whose ETA comes from the ledger's past build times, and the
// verify/promote step shown while it runs. A fast clock and a locked string
// buffer stand in for the second and the terminal; the ledger is a real one.
#include <catch2/catch.hpp>

#include <filesystem>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "cli/progress.h"
#include "state/ledger.h"

using kiln::cli::Progress;
namespace build = kiln::build;

namespace {

// The display writes from its clock's thread: the test reads a copy taken
// under the same lock the writes take.
class Screen : public std::stringbuf {
 public:
  std::string text() {
    std::lock_guard lock(mu_);
    return str();
  }
  size_t count(const std::string& needle) {
    const std::string s = text();
    size_t n = 0;
    for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
    return n;
  }
  // Waits (at most 10 s) until `needle` was written `times` times.
  bool shows(const std::string& needle, size_t times = 1) {
    for (int i = 0; i < 1000 && count(needle) < times; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return count(needle) >= times;
  }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    std::lock_guard lock(mu_);
    return std::stringbuf::xsputn(s, n);
  }
  int_type overflow(int_type c) override {
    std::lock_guard lock(mu_);
    return std::stringbuf::overflow(c);
  }

 private:
  std::recursive_mutex mu_;  // stringbuf::xsputn calls overflow
};

build::Event event(build::Event::Kind kind, const std::string& id, int step = 0, int total = 0, std::string line = "",
                   const build::StageResult* result = nullptr) {
  return build::Event{kind, id, step, total, std::move(line), result};
}

const Progress::Clock fast{std::chrono::milliseconds(20), std::chrono::milliseconds(20)};

}  // namespace

TEST_CASE("live: the clock redraws a long step without any event; the bar's ETA comes from past builds", "[progress]") {
  Screen screen;
  std::ostream out(&screen);
  auto estimate = [](const std::string& id) -> std::optional<double> {
    if (id == "a") return 600.0;
    if (id == "b") return 300.0;
    return std::nullopt;  // "c" was never built
  };
  Progress p(Progress::Mode::live, estimate, out, fast);
  for (const char* id : {"a", "b", "c"}) p.on(event(build::Event::queued, id));
  p.on(event(build::Event::started, "a"));
  p.on(event(build::Event::progressed, "a", 4, 9, "RUN apt-get install -y cuda-libraries-12-4"));
  // No event from here on: only the clock can draw the line again.
  const size_t after_events = screen.count("step 4/9");
  CHECK(screen.shows("step 4/9", after_events + 3));
  const std::string text = screen.text();
  CHECK(text.find("0/3 done, 1 running") != std::string::npos);
  // a: 600 s expected, running; b: 300 s; over one running build; c unknown.
  CHECK(text.find("ETA ~15m00s from past builds (+1 never built)") != std::string::npos);

  build::StageResult done;
  done.id = "a";
  done.outcome = build::Outcome::built;
  done.engine = "local";
  done.image_id = "sha256:0123456789abcdef0123";
  done.seconds = 601.0;
  p.on(event(build::Event::finished, "a", 0, 0, "", &done));
  CHECK(screen.shows("[1/3] built   a in 601.0s"));
  p.step("gpu check a on h200");
  CHECK(screen.shows("gpu check a on h200", 3));  // redrawn by the clock while it runs
  p.close();
  const std::string closed = screen.text();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(screen.text() == closed);  // the clock stopped with close()
  // Every line drawn was cleared again (cursor up + erase line per line).
  CHECK(closed.substr(closed.size() - 8) == "\033[1A\033[2K");
}

TEST_CASE("plain: a log gets 'still building' lines while a step runs, and each verify step once", "[progress]") {
  Screen screen;
  std::ostream out(&screen);
  Progress p(Progress::Mode::plain, {}, out, fast);
  p.on(event(build::Event::queued, "x"));
  p.on(event(build::Event::started, "x"));
  p.on(event(build::Event::progressed, "x", 2, 3, "RUN sleep 600"));
  CHECK(screen.shows("still building x (", 2));
  CHECK(screen.text().find("\033[") == std::string::npos);  // no terminal control in a log
  p.step("static check x");
  CHECK(screen.count("        static check x\n") == 1);
  CHECK(screen.shows("still: static check x ("));
  p.close();
}

TEST_CASE("quiet: nothing is written", "[progress]") {
  Screen screen;
  std::ostream out(&screen);
  {
    Progress p(Progress::Mode::quiet, {}, out, fast);
    p.on(event(build::Event::queued, "x"));
    p.on(event(build::Event::started, "x"));
    p.step("static check x");
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }
  CHECK(screen.text().empty());
}

TEST_CASE("past build times: each stage's latest successful build in the ledger", "[progress]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kiln-progress-" + std::to_string(getpid()));
  fs::remove_all(dir);
  CHECK_FALSE(kiln::cli::past_build_times(dir.string()));  // no ledger: no ETA, and none created
  CHECK_FALSE(fs::exists(dir / "state.db"));
  fs::create_directories(dir);
  {
    kiln::state::Ledger ledger((dir / "state.db").string());
    const std::string hash(64, 'a');
    auto first = ledger.start_build({"cuda12.4-runtime", hash, "m", "local", "engine", ""});
    kiln::state::BuildOutcome built;
    built.seconds = 42.0;
    ledger.finish_build(first, built);
    auto second = ledger.start_build({"cuda12.4-runtime", hash, "m", "local", "engine", ""});
    kiln::state::BuildOutcome failed;
    failed.status = kiln::state::BuildStatus::failed;
    failed.seconds = 3.0;
    ledger.finish_build(second, failed);
  }
  auto estimate = kiln::cli::past_build_times(dir.string());
  REQUIRE(estimate);
  CHECK(estimate("cuda12.4-runtime") == std::optional<double>(42.0));  // the failed attempt after it does not count
  CHECK(estimate("never-built") == std::nullopt);
  fs::remove_all(dir);
}
