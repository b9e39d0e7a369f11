#!/usr/bin/env bash
# One byte that is not UTF-8 (in a path, an engine's
# message) must not erase a --format json report. Real verbs, real bytes:
# `kiln audit` of a missing file whose name holds \xff, and `kiln build` with
# a state directory whose name holds \xff (its log paths land in the report),
# against an engine that answers pings but never builds
# (tests/support/hanging_peer.py pingable). Usage: test_json_bad_bytes.sh PATH/TO/kiln
set -uo pipefail
kiln=$1
peer=$PWD/tests/support/hanging_peer.py
tmp=$(mktemp -d)
peer_pid=
trap '[ -n "$peer_pid" ] && kill $peer_pid 2>/dev/null; rm -rf "$tmp"' EXIT
passed=0 failed=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
json_assert() {  # json_assert FILE PYTHON-EXPR(using j)
  python3 -c "import json,sys; j=json.load(open(sys.argv[1], encoding='utf-8')); sys.exit(0 if ($2) else 1)" "$1" 2>/dev/null
}

bad=$'kiln-\xff-bad'
timeout 60 "$kiln" audit "$tmp/$bad.tar" --format json >"$tmp/audit.json" 2>"$tmp/audit.err"
rc=$?
check "audit of a missing \\xff path: exit 2 (got $rc)" test "$rc" -eq 2
check "audit: stdout is valid JSON" json_assert "$tmp/audit.json" "True"
check "audit: the failed input is reported, the bad byte replaced" \
  json_assert "$tmp/audit.json" "any('kiln-\ufffd-bad' in i.get('input', '') and i.get('error') for i in j['images'])"

python3 "$peer" pingable "unix:$tmp/engine.sock" "$tmp/ready" >/dev/null 2>&1 &
peer_pid=$!
for _ in $(seq 200); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
DOCKER_HOST=unix://$tmp/engine.sock KILN_ENGINE_IDLE_TIMEOUT=2 timeout 60 \
  "$kiln" build --state-dir "$tmp/$bad" --only cuda11.8-debian12-runtime --format json >"$tmp/build.json" 2>"$tmp/build.err"
rc=$?
check "build in a \\xff state dir: exit 2, a stage failed by the silent engine (got $rc)" test "$rc" -eq 2
check "build: stdout is valid JSON" json_assert "$tmp/build.json" "True"
check "build: the failed stage's log path is there, the bad byte replaced" \
  json_assert "$tmp/build.json" "any(s['outcome'] == 'failed' and 'kiln-\ufffd-bad' in s['log'] for s in j['combos'])"
[ "$rc" -eq 2 ] || tail -5 "$tmp/build.err"

echo "json bad bytes: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
