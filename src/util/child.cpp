#include "util/child.h"

#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>

extern char** environ;

namespace kiln {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---- passing kiln's end on to the children's groups ----
// A fixed table the signal handler can read without locks or allocation.
std::array<std::atomic<pid_t>, 64> live_groups{};
// InterruptScope: while set, the first signal is remembered, not died of.
std::atomic<bool> deferring{false};
std::atomic<int> deferred_signal{0};

void forward_and_die(int sig) {
  for (auto& g : live_groups)
    if (pid_t p = g.load(); p > 0) ::kill(-p, sig);
  int none = 0;
  if (deferring.load() && deferred_signal.compare_exchange_strong(none, sig)) return;
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Checked at every start rather than once: cheap, and right in a forked
// process too. Two threads installing the same handler is harmless.
void install_forwarding() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    sigaction(sig, nullptr, &old);
    if (old.sa_handler != SIG_DFL) continue;  // ours already, or someone chose otherwise (SIG_IGN under nohup)
    struct sigaction sa {};
    sa.sa_handler = forward_and_die;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
}

struct GroupSlot {
  std::atomic<pid_t>* slot = nullptr;
  explicit GroupSlot(pid_t pgid) {
    for (auto& g : live_groups) {
      pid_t empty = 0;
      if (g.compare_exchange_strong(empty, pgid)) {
        slot = &g;
        return;
      }
    }
  }
  ~GroupSlot() {
    if (slot) slot->store(0);
  }
};

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() {
    if (pipe2(fd, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  void close(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

// `child_mask`: the signal mask the child starts with (the caller's own,
// from before it blocked the forwarded signals around the spawn).
pid_t spawn(const ChildSpec& spec, Pipe& in, Pipe& out, const sigset_t& child_mask) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out.fd[1], spec.capture_fd);
  if (spec.both_streams) posix_spawn_file_actions_adddup2(&fa, out.fd[1], spec.capture_fd == 1 ? 2 : 1);
  else posix_spawn_file_actions_addopen(&fa, spec.capture_fd == 1 ? 2 : 1, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);  // a group of its own, led by the child
  posix_spawnattr_setsigmask(&attr, &child_mask);
  std::vector<std::string> argv = spec.argv, env = spec.env;
  auto av = c_strings(argv);
  auto ev = c_strings(env);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, av[0], &fa, &attr, av.data(), env.empty() ? environ : ev.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot run " + spec.argv[0] + ": " + std::strerror(rc));
  return pid;
}

// A child that exits without reading must not kill kiln with SIGPIPE. The
// signal goes to the writing thread: blocking it here (not changing the
// process-wide disposition, which other build threads share) is enough.
void write_all(int fd, std::string_view s) {
  if (s.empty()) return;
  sigset_t pipe_only, old_mask;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
  bool broken = false;
  while (!s.empty()) {
    ssize_t w = ::write(fd, s.data(), s.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      broken = w < 0 && errno == EPIPE;
      break;
    }
    s.remove_prefix(static_cast<std::size_t>(w));
  }
  if (broken) {  // take the pending SIGPIPE before unblocking it
    timespec now{};
    sigtimedwait(&pipe_only, nullptr, &now);
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

int decode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

// Reaps the leader; one that closed its output but lingers past `deadline`
// is killed with its group (timed_out).
int reap(pid_t pid, std::optional<Clock::time_point> deadline, bool& timed_out) {
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, deadline ? WNOHANG : 0);
    if (r == pid) return decode(status);
    if (r < 0 && errno != EINTR) return 128 + SIGKILL;  // not ours any more: nothing to report
    if (r == 0 && Clock::now() >= *deadline) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
      deadline.reset();
    } else if (r == 0) {
      ::usleep(20'000);
    }
  }
}

}  // namespace

ChildResult run_child(const ChildSpec& spec, const std::function<bool(std::string_view)>& on_output) {
  if (spec.argv.empty()) throw std::invalid_argument("run_child: no program");
  install_forwarding();
  Pipe in, out;
  // A SIGTERM that lands between the spawn and the group's registration
  // would end kiln without reaching the child: this thread holds the
  // forwarded signals until the group is in the table (then a pending one
  // is delivered and forwarded). Seen under load: the child had already
  // started its own children when kiln was told to stop.
  sigset_t forwarded, old_mask;
  sigemptyset(&forwarded);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&forwarded, sig);
  pthread_sigmask(SIG_BLOCK, &forwarded, &old_mask);
  pid_t pid = 0;
  try {
    pid = spawn(spec, in, out, old_mask);
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    throw;
  }
  GroupSlot slot(pid);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  in.close(0);
  out.close(1);
  write_all(in.fd[1], spec.input);
  in.close(1);

  ChildResult res;
  const auto start = Clock::now();
  auto last_byte = start;
  char buf[65536];
  for (;;) {
    auto now = Clock::now();
    long wait_ms = -1;  // poll's "forever"
    auto limit = [&](milliseconds lim, Clock::time_point from) {
      if (lim.count() <= 0) return;
      long left = static_cast<long>(std::chrono::ceil<milliseconds>(from + lim - now).count());
      wait_ms = wait_ms < 0 ? std::max(0L, left) : std::min(wait_ms, std::max(0L, left));
    };
    limit(spec.idle, last_byte);
    limit(spec.total, start);
    pollfd p{out.fd[0], POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(std::min<long>(wait_ms, 1L << 30)));
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) {
      now = Clock::now();
      const bool total_up = spec.total.count() > 0 && now - start >= spec.total;
      const bool idle_up = spec.idle.count() > 0 && now - last_byte >= spec.idle;
      if (!total_up && !idle_up) continue;  // woke a hair early
      res.timed_out = true;
      res.idle = !total_up;
      break;
    }
    ssize_t n = ::read(out.fd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // every holder of the write end is gone
    last_byte = Clock::now();
    if (!on_output(std::string_view(buf, static_cast<std::size_t>(n)))) {
      res.stopped = true;
      break;
    }
  }
  out.close(0);
  // Ended early: end the whole group, not only its leader (a grandchild
  // holding the pipe would otherwise outlive kiln).
  if (res.timed_out || res.stopped) ::kill(-pid, SIGKILL);
  std::optional<Clock::time_point> deadline;
  if (!res.timed_out && !res.stopped) {
    auto now = Clock::now();
    if (spec.idle.count() > 0) deadline = now + spec.idle;
    if (spec.total.count() > 0) deadline = std::min(deadline.value_or(start + spec.total), start + spec.total);
  }
  bool lingered = false;
  res.status = reap(pid, deadline, lingered);
  if (lingered) {
    res.timed_out = true;
    res.idle = !(spec.total.count() > 0 && Clock::now() - start >= spec.total);
  }
  return res;
}

InterruptScope::InterruptScope() {
  install_forwarding();
  deferred_signal.store(0);
  deferring.store(true);
}

InterruptScope::~InterruptScope() {
  deferring.store(false);
  // One that came and was not died of (the owner returned early): kiln
  // still ends of it, as it would have without the scope.
  if (int sig = deferred_signal.exchange(0); sig != 0) {
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
}

int InterruptScope::signal() const { return deferred_signal.load(); }

void InterruptScope::sleep_for(std::chrono::milliseconds d) const {
  const auto until = Clock::now() + d;
  while (signal() == 0 && Clock::now() < until)
    ::usleep(static_cast<useconds_t>(std::min<long>(100'000, std::chrono::duration_cast<std::chrono::microseconds>(until - Clock::now()).count() + 1)));
}

void InterruptScope::die() const {
  int sig = deferred_signal.load();
  deferring.store(false);
  if (sig == 0) sig = SIGINT;
  ::signal(sig, SIG_DFL);
  ::raise(sig);
  std::_Exit(128 + sig);  // raise returns only if the signal is blocked
}

BackgroundChild::BackgroundChild(const std::vector<std::string>& argv, const std::string& log) {
  if (argv.empty()) throw std::invalid_argument("BackgroundChild: no program");
  install_forwarding();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  sigset_t forwarded, old_mask;  // as in run_child: no signal between spawn and registration
  sigemptyset(&forwarded);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&forwarded, sig);
  pthread_sigmask(SIG_BLOCK, &forwarded, &old_mask);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &old_mask);
  std::vector<std::string> args = argv;
  auto av = c_strings(args);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, av[0], &fa, &attr, av.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc == 0) slot_ = new GroupSlot(pid);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (rc != 0) throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  pid_ = pid;
}

std::optional<int> BackgroundChild::exited() {
  if (status_) return status_;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) status_ = decode(status);
  else if (r < 0 && errno != EINTR) status_ = 128 + SIGKILL;  // not ours any more
  return status_;
}

BackgroundChild::~BackgroundChild() {
  if (!exited()) {
    ::kill(-pid_, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (!exited() && Clock::now() < deadline) ::usleep(20'000);
    if (!exited()) {
      ::kill(-pid_, SIGKILL);
      bool unused = false;
      status_ = reap(pid_, std::nullopt, unused);
    }
  }
  delete static_cast<GroupSlot*>(slot_);
}

}  // namespace kiln
