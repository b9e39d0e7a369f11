#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "state/internal.h"

namespace kiln::state::detail {

namespace {

std::string hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  std::string h = buf;
  for (char& c : h)
    if (c == ':') c = '_';
  return h.empty() ? "unknown" : h;
}

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id.empty() ? "unknown" : id;
}

struct ProcStat {
  char state = '?';
  std::string start_time;  // clock ticks after boot (field 22 of /proc/PID/stat)
};

// Empty when the process does not exist (or /proc cannot be read).
std::optional<ProcStat> proc_stat(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // "pid (comm) state ppid ..." -- comm may hold spaces and parentheses.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 20) return std::nullopt;
  return ProcStat{fields[0].empty() ? '?' : fields[0][0], fields[19]};
}

std::vector<std::string> split_colon(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    auto pos = s.find(':', start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

}  // namespace

std::string this_process_owner() {
  long pid = static_cast<long>(getpid());
  auto st = proc_stat(pid);
  return hostname() + ":" + boot_id() + ":" + std::to_string(pid) + ":" + (st ? st->start_time : "0");
}

OwnerState owner_state(std::string_view owner) {
  auto parts = split_colon(owner);
  if (parts.size() != 4) return OwnerState::dead;  // not written by kiln: nobody can finish it
  if (parts[0] != hostname()) return OwnerState::elsewhere;
  std::string boot = boot_id();
  if (parts[1] != boot && boot != "unknown") return OwnerState::dead;  // rebooted since
  long pid = 0;
  try {
    pid = std::stol(parts[2]);
  } catch (...) {
    return OwnerState::dead;
  }
  if (pid <= 0) return OwnerState::dead;
  if (auto st = proc_stat(pid)) {
    if (st->state == 'Z' || st->state == 'X') return OwnerState::dead;  // exited, not yet reaped
    if (parts[3] != "0" && st->start_time != parts[3]) return OwnerState::dead;  // pid reused
    return OwnerState::alive;
  }
  // No /proc entry: gone -- unless /proc is not mounted, then ask the kernel.
  if (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) {
    std::ifstream self("/proc/self/stat");
    return self ? OwnerState::dead : OwnerState::alive;
  }
  return OwnerState::dead;
}

}  // namespace kiln::state::detail
