// One writer per state directory. Two `kiln build` on one --state-dir used to
// build every stage twice and record two images for one input hash: each
// saw the other's stages as not yet built. The verbs that write the state
// directory (build, verify, run) first take an advisory lock, flock(2) on
// <state_dir>/lock; the kernel drops it when the holder exits, however it
// exits (kill -9 included), so a stale lock cannot exist. The holder writes
// who it is into the file (pid, verb, start time), so a second writer can
// say whom it waits for. Reading verbs (status, plan, audit, promote) never
// take it and never wait on it: SQLite's WAL lets them read while a build
// writes. docs/state.md, "One writer per state directory".
#pragma once
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "state/ledger.h"

namespace kiln::state {

// The lock stayed held for the whole wait. what() names the state directory
// and the holder ("kiln build, pid 4242, since 2026-11-30T21:40:02Z").
class StateBusy : public LedgerError {
 public:
  StateBusy(const std::string& what, std::string holder) : LedgerError(what), holder(std::move(holder)) {}
  std::string holder;
};

class WriterLock {
 public:
  // Takes the lock on `state_dir` (created if missing) for `verb`. While
  // another process holds it, calls `on_wait` once with the holder and
  // retries until `wait` has passed, then throws StateBusy. wait 0: one try.
  // Throws LedgerError when the lock file cannot be created or locked at all.
  WriterLock(const std::string& state_dir, std::string_view verb, std::chrono::milliseconds wait,
             const std::function<void(const std::string& holder)>& on_wait = {});
  ~WriterLock();  // lets go (closing the file is enough)
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// How long a writer waits for the lock: KILN_LOCK_WAIT seconds, else 60 s.
std::chrono::milliseconds lock_wait_from_env();

}  // namespace kiln::state
