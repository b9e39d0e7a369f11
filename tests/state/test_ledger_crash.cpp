// The ledger under real process death and real concurrency: a writer killed
// with SIGKILL at a random point loses nothing it committed and leaves a
// sound database; writers in several processes all get through.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

#include "state/ledger.h"
#include "support.h"

using namespace kiln::state;
using kiln::state::test::hash_of;
using kiln::state::test::raw_scalar;
using kiln::state::test::TempDir;

namespace {

// Everything about write number n is derived from n, so the parent can check
// any row it finds.
BuildStart start_n(unsigned long n, const std::string& who) {
  return BuildStart{"stage-" + std::to_string(n % 13), hash_of(n), "crash-" + who, "unix:///run/test.sock",
                    "engine", "logs/" + std::to_string(n) + ".log"};
}

BuildOutcome outcome_n(unsigned long n) {
  BuildOutcome o;
  if (n % 5 == 4) {
    o.status = BuildStatus::failed;
    o.failed_step = "step " + std::to_string(n);
    o.error = "failed " + std::to_string(n);
  } else {
    o.status = BuildStatus::built;
    o.image_id = "sha256:" + hash_of(n + 1000000);
    o.digest = "sha256:" + hash_of(n + 2000000);
  }
  return o;
}

unsigned long n_of(const BuildRecord& r) {
  auto s = r.log_path.substr(5);  // "logs/<n>.log"
  return std::stoul(s.substr(0, s.find('.')));
}

// Checks one row against what write n must have produced.
void check_row(const BuildRecord& r) {
  unsigned long n = n_of(r);
  INFO("build " << r.id << " (write " << n << ")");
  auto s = start_n(n, "");
  CHECK(r.stage_id == s.stage_id);
  CHECK(r.input_hash == s.input_hash);
  if (r.status == BuildStatus::building || r.status == BuildStatus::interrupted) {
    CHECK(r.image_id.empty());
    return;
  }
  auto o = outcome_n(n);
  CHECK(r.status == o.status);
  CHECK(r.image_id == o.image_id);
  CHECK(r.digest == o.digest);
  CHECK(r.failed_step == o.failed_step);
  REQUIRE(r.finished_at);
  CHECK(*r.finished_at >= r.started_at);
  REQUIRE(r.seconds);
}

struct Written {
  unsigned long n;
  BuildId id;
};

// The child: write builds as fast as it can, reporting each one after its
// finish_build committed. Never returns.
[[noreturn]] void writer(const std::string& path, int report_fd, unsigned long first, unsigned long count) {
  try {
    Ledger ledger(path);
    for (unsigned long n = first; n < first + count; ++n) {
      BuildId id = ledger.start_build(start_n(n, "w"));
      ledger.finish_build(id, outcome_n(n));
      if (report_fd >= 0) {
        Written w{n, id};
        if (write(report_fd, &w, sizeof w) != static_cast<ssize_t>(sizeof w)) _exit(4);
      }
    }
    _exit(0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "writer %lu: %s\n", first, e.what());
    _exit(3);
  } catch (...) {
    _exit(5);
  }
}

}  // namespace

TEST_CASE("kill -9 in the middle of writing loses no committed build and leaves a sound ledger") {
  TempDir tmp;
  std::string path = tmp.file("state.db");
  std::vector<Written> committed;
  unsigned long next = 0;

  // Several rounds on the same file, each killed after a different number of
  // writes, so the kill lands at different points of the write path.
  for (int round = 0; round < 5; ++round) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      writer(path, fds[1], next, 1000000);
    }
    close(fds[1]);
    size_t kill_after = 50 + static_cast<size_t>(round) * 37;
    size_t seen = 0;
    Written w{};
    while (seen < kill_after && read(fds[0], &w, sizeof w) == static_cast<ssize_t>(sizeof w)) {
      committed.push_back(w);
      ++seen;
    }
    REQUIRE(seen == kill_after);  // the child was writing, not dead
    REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    // Reports already in the pipe were committed before the kill.
    while (read(fds[0], &w, sizeof w) == static_cast<ssize_t>(sizeof w)) committed.push_back(w);
    close(fds[0]);
    next = committed.back().n + 1000;  // the next round's writes never collide

    // The killed process left its WAL behind, uncheckpointed.
    INFO("round " << round << ": " << committed.size() << " committed so far");
    CHECK(std::filesystem::exists(path + "-wal"));

    Ledger ledger(path);
    auto problems = ledger.check_integrity();
    CHECK(problems.empty());
    CHECK(raw_scalar(path, "PRAGMA integrity_check") == "ok");

    // Every reported build is there, finished, and exactly as written.
    for (const auto& c : committed) {
      auto r = ledger.build(c.id);
      REQUIRE(r);
      CHECK(n_of(*r) == c.n);
      CHECK(r->status != BuildStatus::building);
      check_row(*r);
      if (r->status == BuildStatus::built) CHECK(ledger.built(hash_of(c.n)));
    }
    // Every row at all is consistent; at most the one in flight is unfinished.
    std::set<BuildId> reported;
    for (const auto& c : committed) reported.insert(c.id);
    // Unreported rows: the one write in flight when each round was killed
    // (still building, or committed just before its report).
    int unfinished = 0, unreported = 0;
    for (int s = 0; s < 13; ++s) {
      for (const auto& r : ledger.history("stage-" + std::to_string(s))) {
        check_row(r);
        if (r.status == BuildStatus::building) ++unfinished;
        if (!reported.count(r.id)) ++unreported;
      }
    }
    CHECK(unfinished <= 1);
    CHECK(unreported <= round + 1);
    auto recovered = ledger.recover();
    CHECK(static_cast<int>(recovered.size()) == unfinished);
    for (const auto& r : recovered) {
      CHECK(r.status == BuildStatus::interrupted);
      CHECK(ledger.build(r.id)->status == BuildStatus::interrupted);
      CHECK_FALSE(reported.count(r.id));
    }
    CHECK(ledger.recover().empty());
  }
  CHECK(committed.size() >= 5 * 50);
}

TEST_CASE("several processes write the same ledger at once; the busy timeout serializes them") {
  TempDir tmp;
  std::string path = tmp.file("fresh/state.db");  // they race to create and migrate it, too
  constexpr int writers = 4;
  constexpr unsigned long per_writer = 250;

  std::vector<pid_t> pids;
  for (int w = 0; w < writers; ++w) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) writer(path, -1, static_cast<unsigned long>(w) * 100000, per_writer);
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  Ledger ledger(path);
  CHECK(ledger.check_integrity().empty());
  size_t rows = 0;
  std::set<unsigned long> ns;
  for (int s = 0; s < 13; ++s) {
    for (const auto& r : ledger.history("stage-" + std::to_string(s))) {
      check_row(r);
      CHECK(r.status != BuildStatus::building);
      ns.insert(n_of(r));
      ++rows;
    }
  }
  CHECK(rows == writers * per_writer);
  CHECK(ns.size() == writers * per_writer);
  CHECK(ledger.recover().empty());
}
