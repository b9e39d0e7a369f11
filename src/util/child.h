// A helper program run to completion under time limits: `docker buildx`,
// `docker-credential-*`. It gets a process group of its own, so a limit ends
// it and everything it started (the buildx plugin under the docker CLI, a
// helper script's children), not just the first process. While it runs, a
// SIGINT, SIGTERM or SIGHUP that ends kiln is passed on to that group first:
// leaving the terminal's group must not leave builds running after Ctrl-C.
#pragma once
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

struct ChildSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH (posix_spawnp, no shell)
  std::vector<std::string> env;   // empty: kiln's own environment
  std::string input;              // written to its stdin, which is then closed: a few
                                  // bytes (written whole first, so it must fit a pipe)
  int capture_fd = 1;             // 1 or 2: the stream handed to on_output; the other goes to /dev/null
  bool both_streams = false;      // both to on_output, interleaved (Slurm's commands: a result on
                                  // stdout, the reason it failed on stderr)
  // Given up (the group killed with SIGKILL) when no byte of the captured
  // stream came for `idle`, or after `total` in all; 0 turns a limit off.
  std::chrono::milliseconds idle{0}, total{0};
};

struct ChildResult {
  int status = 0;       // exit status, or 128 + signal
  bool timed_out = false;
  bool stopped = false;  // on_output returned false: the group was killed
  bool idle = false;     // with timed_out: which limit ran out (else total)
};

// Throws std::runtime_error when it cannot be started (no such program).
// on_output returns false to stop reading (the group is then killed).
ChildResult run_child(const ChildSpec& spec, const std::function<bool(std::string_view)>& on_output);

// A helper program that runs beside kiln for as long as this object lives
// (an `ssh -L` tunnel): in a process group of its own, passed kiln's
// SIGINT/SIGTERM/SIGHUP like run_child's. stdin and stdout are /dev/null;
// stderr is appended to `log` (a file, not a pipe: a pipe nobody reads
// would fill and stall it). The destructor ends the group (SIGTERM, then
// SIGKILL after 2 s) and reaps it.
class BackgroundChild {
 public:
  // Throws std::runtime_error when it cannot be started.
  BackgroundChild(const std::vector<std::string>& argv, const std::string& log);
  ~BackgroundChild();
  BackgroundChild(const BackgroundChild&) = delete;
  BackgroundChild& operator=(const BackgroundChild&) = delete;
  // Its exit status (128 + signal) once it has ended; nullopt while it runs.
  std::optional<int> exited();

 private:
  int pid_ = 0;
  std::optional<int> status_;
  void* slot_ = nullptr;  // its entry in the table of groups kiln's signals go to
};

// While one lives, a SIGINT, SIGTERM or SIGHUP does not end kiln at once:
// it is passed on to the children's groups as always and remembered, and
// the owner -- who has started something outside kiln that outlives it (a
// Slurm job) -- sees it in signal(), ends what it started, and calls die()
// to end as kiln would have (the shell sees 128 + the signal). A second
// signal ends kiln at once. A signal kiln was told to ignore (nohup) stays
// ignored. One at a time; it does not nest.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  int signal() const;  // 0 while none came
  // Sleeps up to `d`, waking early when a signal comes.
  void sleep_for(std::chrono::milliseconds d) const;
  [[noreturn]] void die() const;
};

}  // namespace kiln
