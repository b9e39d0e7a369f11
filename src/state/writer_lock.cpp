#include "state/writer_lock.h"
#include "util/text.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <thread>

#include "util/env_limits.h"

namespace kiln::state {

namespace {

using Clock = std::chrono::steady_clock;

std::string lock_path(const std::string& state_dir) { return (std::filesystem::path(state_dir) / "lock").string(); }

std::string read_holder(int fd) {
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  std::string s = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s.empty() ? "another kiln (it has not said who yet)" : s;
}

// Who holds it, in the file for the next writer to read. Truncated first: a
// shorter line must not keep the tail of a longer one.
void write_holder(int fd, std::string_view verb) {
  std::string line = "kiln " + std::string(verb) + ", pid " + std::to_string(getpid()) + ", since " + utc_now("%Y-%m-%dT%H:%M:%SZ") + "\n";
  if (ftruncate(fd, 0) != 0) return;  // the lock holds without the note
  ssize_t w = pwrite(fd, line.data(), line.size(), 0);
  (void)w;
}

}  // namespace

WriterLock::WriterLock(const std::string& state_dir, std::string_view verb, std::chrono::milliseconds wait,
                       const std::function<void(const std::string&)>& on_wait)
    : path_(lock_path(state_dir)) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) throw LedgerError(state_dir + ": cannot create the state directory: " + ec.message());
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) throw LedgerError(path_ + ": cannot open the lock file: " + std::strerror(errno));
  const auto deadline = Clock::now() + wait;
  bool told = false;
  for (;;) {
    if (flock(fd_, LOCK_EX | LOCK_NB) == 0) break;
    int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) {
      ::close(fd_);
      throw LedgerError(path_ + ": cannot lock: " + std::strerror(err));
    }
    std::string who = read_holder(fd_);
    if (Clock::now() >= deadline) {
      ::close(fd_);
      throw StateBusy("the state directory " + state_dir + " is in use by " + who + " (lock " + path_ +
                          "); waited " + describe_seconds(wait) + " (KILN_LOCK_WAIT)",
                      who);
    }
    if (!told && on_wait) on_wait(who);
    told = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  write_holder(fd_, verb);
}

WriterLock::~WriterLock() {
  if (fd_ >= 0) ::close(fd_);  // the last close of the description drops the flock
}

std::chrono::milliseconds lock_wait_from_env() {
  return env_seconds("KILN_LOCK_WAIT", std::chrono::milliseconds(60'000));
}

}  // namespace kiln::state
