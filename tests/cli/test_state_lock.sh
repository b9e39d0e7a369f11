#!/usr/bin/env bash
# One writer per state directory. Two real `kiln build`
# on one --state-dir: while the first holds it (its build hangs on an engine
# that answers pings but never builds: tests/support/hanging_peer.py
# pingable), a second with KILN_LOCK_WAIT=0 exits 2 naming the first's verb
# and pid; `kiln status` reads meanwhile without waiting; a third that may
# wait says whom it waits for and goes ahead once the first is killed -9
# (the kernel drops the lock: none goes stale). Usage: test_state_lock.sh PATH/TO/kiln
set -uo pipefail
kiln=$1
peer=$PWD/tests/support/hanging_peer.py
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
passed=0 failed=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
wait_for() {  # wait_for FILE TEXT: up to 60 s until FILE holds TEXT
  for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

python3 "$peer" pingable "unix:$tmp/engine.sock" "$tmp/ready" >/dev/null 2>&1 &
pids+=($!)
wait_for "$tmp/ready" engine.sock || { echo "FAIL: the fake engine did not start"; exit 1; }
export DOCKER_HOST=unix://$tmp/engine.sock
state=$tmp/state
only=(--only cuda11.8-debian12-runtime)

# The first writer: no idle limit, so it holds the state directory until killed.
KILN_ENGINE_IDLE_TIMEOUT=0 "$kiln" build --state-dir "$state" "${only[@]}" >"$tmp/first.out" 2>&1 &
first=$!
pids+=($first)
check "the first build holds the lock, and says so in it" wait_for "$state/lock" "kiln build, pid $first"

KILN_LOCK_WAIT=0 timeout 60 "$kiln" build --state-dir "$state" "${only[@]}" >"$tmp/second.out" 2>&1
rc=$?
check "a second writer exits 2 (got $rc)" test "$rc" -eq 2
check "it names the holder: verb and pid" grep -q "in use by kiln build, pid $first" "$tmp/second.out"
KILN_LOCK_WAIT=0 timeout 60 "$kiln" verify --state-dir "$state" "${only[@]}" >"$tmp/verify.out" 2>&1
check "verify is a writer too (exit 2, got $?)" grep -q "in use by kiln build, pid $first" "$tmp/verify.out"

timeout 60 "$kiln" status --state-dir "$state" >"$tmp/status.out" 2>&1
rc=$?
check "status reads while the build holds the lock (exit 0, got $rc)" test "$rc" -eq 0
check "status sees the running build" grep -q "building" "$tmp/status.out"

# A third writer that may wait: it waits, then goes once the first is gone.
# (No `timeout` wrapper: $! must be kiln's own pid; its limits bound it.)
KILN_LOCK_WAIT=120 KILN_ENGINE_IDLE_TIMEOUT=2 "$kiln" build --state-dir "$state" "${only[@]}" \
  >"$tmp/third.out" 2>&1 &
third=$!
pids+=($third)
check "the third says whom it waits for" wait_for "$tmp/third.out" "is in use by kiln build, pid $first, since .*; waiting up to 2 min"
kill -9 "$first"; wait "$first" 2>/dev/null
wait "$third"
rc=$?
check "the third built after the first died (its stage timed out on the silent engine: exit 2, got $rc)" test "$rc" -eq 2
check "the lock file named the third then" grep -q "kiln build, pid $third" "$state/lock"
# The third's stage fails on the silent engine; the scheduler then marks
# that engine down and records the stage's last word: no engine can build it.
check "the first's attempt was recovered as interrupted, the third's failed" python3 - "$state/state.db" <<'PY'
import sqlite3, sys
rows = list(sqlite3.connect(sys.argv[1]).execute("SELECT status, error FROM builds ORDER BY id"))
ok = rows[0][0] == "interrupted" and len(rows) >= 2 and all(s == "failed" for s, _ in rows[1:]) \
     and "sent nothing for 2 s" in rows[1][1]
sys.exit(0 if ok else 1)
PY
echo "state lock: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
