// The JSON writer that survives bad bytes, the limits read from the
// environment, and helper programs run under limits in a process group.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <optional>

#include "util/child.h"
#include "util/env_limits.h"
#include "util/json_out.h"
#include "util/text.h"

using namespace kiln;
using namespace std::chrono_literals;

TEST_CASE("json_text replaces invalid UTF-8 instead of throwing") {
  nlohmann::json j = {{"error", std::string("cannot open /tmp/x\xff\xfe.tar")}, {"ok", false}};
  CHECK_THROWS(j.dump(2));  // what used to erase a whole --format json report
  std::string text = json_text(j, 2);
  auto back = nlohmann::json::parse(text);  // valid JSON
  CHECK(back["error"] == "cannot open /tmp/x\xEF\xBF\xBD\xEF\xBF\xBD.tar");
  CHECK(back["ok"] == false);
  CHECK(json_text({{"a", "é"}}) == "{\"a\":\"é\"}");  // valid text stays as it was
}

TEST_CASE("reason: the one why-not value of every document, a string or null") {
  CHECK(reason_json(std::string()).is_null());
  CHECK(reason_json(std::vector<std::string>{}).is_null());
  CHECK(reason_json("not built") == "not built");
  CHECK(reason_json(std::vector<std::string>{"driver too old", "no SASS for sm_60"}) == "driver too old; no SASS for sm_60");
}

TEST_CASE("env_seconds: seconds, decimals, 0 for none; anything else names the variable") {
  unsetenv("KILN_TEST_LIMIT");
  CHECK(env_seconds("KILN_TEST_LIMIT", 7s) == 7s);
  setenv("KILN_TEST_LIMIT", "2", 1);
  CHECK(env_seconds("KILN_TEST_LIMIT", 7s) == 2s);
  setenv("KILN_TEST_LIMIT", "0.25", 1);
  CHECK(env_seconds("KILN_TEST_LIMIT", 7s) == 250ms);
  setenv("KILN_TEST_LIMIT", "0", 1);
  CHECK(env_seconds("KILN_TEST_LIMIT", 7s) == 0ms);
  for (const char* bad : {"2s", "-1", "soon", "nan", "1e12"}) {
    setenv("KILN_TEST_LIMIT", bad, 1);
    CHECK_THROWS_WITH(env_seconds("KILN_TEST_LIMIT", 7s), Catch::Contains(std::string("KILN_TEST_LIMIT=") + bad));
  }
  unsetenv("KILN_TEST_LIMIT");
  CHECK(describe_seconds(2s) == "2 s");
  CHECK(describe_seconds(1500ms) == "1.5 s");
  CHECK(describe_seconds(900s) == "15 min");
}

namespace {

struct Script {
  std::filesystem::path dir, path;
  explicit Script(const std::string& body) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kiln-child-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()));
    dir = tmpl;
    path = dir / "helper";
    std::ofstream(path) << "#!/bin/sh\n" << body;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  }
  ~Script() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string file(const char* name) const { return (dir / name).string(); }
};

// The process exists and is not a zombie waiting for its parent.
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  return line.find(") Z") == std::string::npos;
}

}  // namespace

TEST_CASE("run_child: stdin in, the chosen stream out, the exit status back") {
  Script s("read host; echo \"got $host\"; echo noise >&2; exit 3\n");
  std::string out;
  ChildResult r = run_child({.argv = {s.path.string()}, .input = "example.org\n"}, [&](std::string_view b) {
    out += b;
    return true;
  });
  CHECK(out == "got example.org\n");
  CHECK(r.status == 3);
  CHECK_FALSE(r.timed_out);
}

TEST_CASE("run_child: an idle limit kills the whole process group") {
  Script s("echo started\nsleep 300 &\necho $! > \"$(dirname \"$0\")/child.pid\"\nwait\n");
  std::string out;
  ChildResult r = run_child({.argv = {s.path.string()}, .idle = 500ms}, [&](std::string_view b) {
    out += b;
    return true;
  });
  CHECK(out == "started\n");
  CHECK(r.timed_out);
  CHECK(r.idle);
  pid_t child = std::stoi(read_file(s.file("child.pid")));
  // kill() returns before the kernel has torn the process down, and init
  // reaps it when it gets to it: give it up to 10 s to be gone.
  for (int i = 0; i < 1000 && running(child); ++i) usleep(10'000);
  CHECK_FALSE(running(child));
}

TEST_CASE("run_child: a total limit ends a helper that keeps talking") {
  Script s("while true; do echo tick; sleep 0.1; done\n");
  ChildResult r = run_child({.argv = {s.path.string()}, .idle = 5s, .total = 700ms}, [](std::string_view) { return true; });
  CHECK(r.timed_out);
  CHECK_FALSE(r.idle);
}

TEST_CASE("run_child: a leader that closes its output and lingers is ended too") {
  Script s("exec >/dev/null\nsleep 300\n");
  ChildResult r = run_child({.argv = {s.path.string()}, .idle = 500ms}, [](std::string_view) { return true; });
  CHECK(r.timed_out);
}

TEST_CASE("run_child: a program that does not exist is an error") {
  CHECK_THROWS_WITH(run_child({.argv = {"kiln-no-such-program-xyz"}}, [](std::string_view) { return true; }),
                    Catch::Contains("cannot run kiln-no-such-program-xyz"));
}

TEST_CASE("run_child: SIGTERM to kiln reaches the child's group before kiln dies") {
  // The group is not the terminal's: without forwarding, Ctrl-C or a
  // pipeline's SIGTERM would end kiln and leave `docker buildx` building.
  Script s("sleep 300 &\necho $! > \"$(dirname \"$0\")/child.pid\"\nwait\n");
  pid_t kiln_like = fork();
  REQUIRE(kiln_like >= 0);
  if (kiln_like == 0) {
    signal(SIGTERM, SIG_DFL);  // as in kiln, which sets none (Catch2 has its own)
    run_child({.argv = {s.path.string()}}, [](std::string_view) { return true; });
    _exit(0);
  }
  std::string pid_file = s.file("child.pid");
  auto written = [&] {  // the whole line: the shell creates the file first
    std::error_code ec;
    return std::filesystem::exists(pid_file, ec) && read_file(pid_file).ends_with("\n");
  };
  for (int i = 0; i < 1000 && !written(); ++i) usleep(10'000);
  REQUIRE(written());
  pid_t grandchild = std::stoi(read_file(pid_file));
  REQUIRE(kill(kiln_like, SIGTERM) == 0);
  int status = 0;
  waitpid(kiln_like, &status, 0);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);  // it still dies of the signal it got
  for (int i = 0; i < 1000 && running(grandchild); ++i) usleep(10'000);
  CHECK_FALSE(running(grandchild));
}

TEST_CASE("BackgroundChild: runs beside kiln, its stderr in a file, ended and reaped with the object", "[child][background]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kiln-bg-test-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string log = (dir / "err.log").string();
  pid_t grandchild = 0;
  {
    // A leader that starts a child of its own (as ssh could a ProxyCommand) and waits.
    BackgroundChild c({"sh", "-c", "sleep 300 & echo $! >&2; echo started >&2; wait"}, log);
    for (int i = 0; i < 250 && std::ifstream(log).peek() == EOF; ++i) usleep(20'000);
    CHECK_FALSE(c.exited().has_value());
    std::ifstream in(log);
    in >> grandchild;
    REQUIRE(grandchild > 0);
    CHECK(::kill(grandchild, 0) == 0);
  }
  // The whole group went with the object: the sleep too (reaped by init; give it a moment).
  // Gone, or a zombie waiting for whoever reaps orphans here.
  auto ended = [](pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string pid_field, comm, state;
    return !(stat >> pid_field >> comm >> state) || state == "Z";
  };
  bool gone = false;
  for (int i = 0; i < 250 && !gone; ++i) {
    gone = ended(grandchild);
    if (!gone) usleep(20'000);
  }
  CHECK(gone);
  {
    BackgroundChild c({"sh", "-c", "echo 'Permission denied (publickey).' >&2; exit 3"}, log);
    std::optional<int> status;
    for (int i = 0; i < 250 && !(status = c.exited()); ++i) usleep(20'000);
    CHECK(status == 3);
  }
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("Permission denied (publickey).") != std::string::npos);  // appended after the first's lines
  CHECK(text.find("started") != std::string::npos);
  CHECK_THROWS_AS(BackgroundChild({"kiln-no-such-program-xyz"}, log), std::runtime_error);
  fs::remove_all(dir);
}

TEST_CASE("InterruptScope: the first signal is remembered, the owner ends of it; a second ends kiln at once", "[child][interrupt]") {
  // Each case in a process of its own, as kiln: dispositions as kiln has them.
  auto in_child = [](const std::function<int()>& body) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_DFL);  // Catch2 has its own
      _exit(body());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  };
  // SIGINT during the scope: seen by signal(), kiln alive; die() ends it of SIGINT.
  int st = in_child([] {
    InterruptScope scope;
    raise(SIGINT);
    if (scope.signal() != SIGINT) return 10;
    scope.sleep_for(std::chrono::seconds(30));  // wakes at once: the signal already came
    scope.die();
  });
  CHECK(WIFSIGNALED(st));
  CHECK(WTERMSIG(st) == SIGINT);
  // A second signal (SIGTERM after SIGINT): kiln ends of it at once.
  st = in_child([] {
    InterruptScope scope;
    raise(SIGINT);
    raise(SIGTERM);
    return 11;
  });
  CHECK(WIFSIGNALED(st));
  CHECK(WTERMSIG(st) == SIGTERM);
  // Ignored (nohup, a shell's background job): stays ignored.
  st = in_child([] {
    signal(SIGINT, SIG_IGN);
    InterruptScope scope;
    raise(SIGINT);
    return scope.signal() == 0 ? 0 : 12;
  });
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  // Out of the scope: a signal ends kiln as before.
  st = in_child([] {
    { InterruptScope scope; }
    raise(SIGHUP);
    return 13;
  });
  CHECK(WIFSIGNALED(st));
  CHECK(WTERMSIG(st) == SIGHUP);
}
