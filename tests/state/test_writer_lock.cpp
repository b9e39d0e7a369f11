// One writer per state directory: real processes take the
// lock; a second writer is refused naming the first (pid and verb), or waits
// and gets it once the first lets go; a holder killed with SIGKILL leaves no
// stale lock; readers of the ledger never wait on it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "state/ledger.h"
#include "state/writer_lock.h"
#include "util/text.h"
#include "support.h"

using namespace kiln::state;
using kiln::state::test::TempDir;
using namespace std::chrono_literals;

namespace {

// A child process that takes the lock for `verb`, says so on a pipe, and
// holds it until told to go (a byte on the other pipe) or killed.
struct Holder {
  pid_t pid = -1;
  int to_child = -1, from_child = -1;

  Holder(const std::string& dir, const char* verb) {
    int down[2], up[2];
    REQUIRE(pipe(down) == 0);
    REQUIRE(pipe(up) == 0);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(down[1]);
      close(up[0]);
      try {
        WriterLock lock(dir, verb, 0ms);
        char ok = 'L';
        if (write(up[1], &ok, 1) != 1) _exit(3);
        char go;
        (void)!read(down[0], &go, 1);  // until told, or the parent is gone
      } catch (...) {
        _exit(2);
      }
      _exit(0);
    }
    close(down[0]);
    close(up[1]);
    to_child = down[1];
    from_child = up[0];
    char ok = 0;
    REQUIRE(read(from_child, &ok, 1) == 1);
    REQUIRE(ok == 'L');
  }
  void release() {
    char go = 'G';
    (void)!write(to_child, &go, 1);
  }
  int wait() {
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
    return status;
  }
  ~Holder() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    close(to_child);
    close(from_child);
  }
};

}  // namespace

TEST_CASE("a second writer is refused, naming the holder's verb and pid") {
  TempDir t;
  std::string dir = t.file("state");
  Holder first(dir, "build");
  std::string who = "kiln build, pid " + std::to_string(first.pid);
  try {
    WriterLock second(dir, "verify", 0ms);
    FAIL("the second writer got the lock");
  } catch (const StateBusy& e) {
    CHECK(e.holder.starts_with(who));
    CHECK(std::string(e.what()).find(dir) != std::string::npos);
    CHECK(std::string(e.what()).find(who) != std::string::npos);
    CHECK(std::string(e.what()).find("KILN_LOCK_WAIT") != std::string::npos);
  }
  first.release();
  CHECK(first.wait() == 0);
  WriterLock after(dir, "verify", 0ms);  // free again
}

TEST_CASE("a waiting writer says whom it waits for and gets the lock when the holder lets go") {
  TempDir t;
  std::string dir = t.file("state");
  Holder first(dir, "run");
  int told = 0;
  std::string heard;
  WriterLock second(dir, "build", 120s, [&](const std::string& holder) {
    ++told;
    heard = holder;
    first.release();  // only now: the wait is what is being tested
  });
  CHECK(told == 1);
  CHECK(heard.starts_with("kiln run, pid " + std::to_string(first.pid)));
  CHECK(first.wait() == 0);
  // The lock file now names the new holder.
  std::string note = kiln::read_file(second.path());
  CHECK(note.starts_with("kiln build, pid " + std::to_string(getpid()) + ", since "));
}

TEST_CASE("a holder killed with SIGKILL leaves no stale lock") {
  TempDir t;
  std::string dir = t.file("state");
  Holder first(dir, "build");
  kill(first.pid, SIGKILL);
  first.wait();
  WriterLock next(dir, "build", 0ms);
  CHECK(kiln::read_file(next.path()).starts_with("kiln build, pid " + std::to_string(getpid())));
}

TEST_CASE("the ledger is read and written by others while a writer holds the lock") {
  TempDir t;
  std::string dir = t.file("state");
  {
    Ledger l(dir + "/state.db");
    l.record_combo("m", "c1", {"s1"});
  }
  Holder first(dir, "build");
  // `kiln status` opens the ledger and recovers: neither waits for the lock.
  Ledger reader(dir + "/state.db");
  reader.recover();
  CHECK(reader.combos("m").size() == 1);
  first.release();
  CHECK(first.wait() == 0);
}

TEST_CASE("KILN_LOCK_WAIT sets the wait; a bad value is refused") {
  unsetenv("KILN_LOCK_WAIT");
  CHECK(lock_wait_from_env() == 60s);
  setenv("KILN_LOCK_WAIT", "2.5", 1);
  CHECK(lock_wait_from_env() == 2500ms);
  setenv("KILN_LOCK_WAIT", "soon", 1);
  CHECK_THROWS_WITH(lock_wait_from_env(), Catch::Contains("KILN_LOCK_WAIT=soon"));
  unsetenv("KILN_LOCK_WAIT");
}
