#!/usr/bin/env bash
# kiln build end to end on real engines, fast: the real `kiln`
# binary, two private dockerds (tests/support/dockerd.sh kb1 and kb2), the
# offline matrix's combinations rendered from a busybox-only template set
# (tests/build/data/templates) onto a busybox base imported here.
#
#   test_build.sh KILN        exit 0 all passed, 1 a check failed, 77 skipped (not root / no dockerd)
#
# Each scenario uses its own matrix name (so its own kiln.local/<name> images)
# and its own state dir. The daemons are purged at the start (no layer cache
# from an earlier run, so the slow steps really run) and at the end.
set -uo pipefail

kiln=$(realpath "${1:?usage: test_build.sh path/to/kiln}")
src=$(cd "$(dirname "$0")/../.." && pwd)
data=$src/tests/build/data
dockerd=$src/tests/support/dockerd.sh

[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for private dockerds"; exit 77; }
command -v dockerd >/dev/null || { echo "SKIP: dockerd not installed"; exit 77; }
[[ -x /bin/busybox ]] || { echo "SKIP: no /bin/busybox (apt-get install busybox-static)"; exit 77; }

tmp=$(mktemp -d /tmp/kiln-build-test.XXXXXX)
bg_pids=()
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  "$dockerd" purge kb1 >/dev/null 2>&1
  "$dockerd" purge kb2 >/dev/null 2>&1
  [[ -n ${KILN_TEST_KEEP:-} ]] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

fails=0
t_start=$(date +%s)
pass() { echo "  ok   $*"; }
fail() { echo "  FAIL $*"; fails=$((fails + 1)); }
check() {  # check "what" command...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
section() { echo "== $* ($(( $(date +%s) - t_start )) s)"; }

# json FILE EXPR: a Python expression over d (the parsed file), printed.
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); r = eval(sys.argv[2]); print(r if not isinstance(r, (dict, list, tuple)) else json.dumps(r))' "$1" "$2"; }
# sql STATE_DIR QUERY: rows of the ledger, fields joined by |.
sql() { python3 -c 'import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in row))' "$1/state.db" "$2"; }
# api SOCKET PATH: GET on the Engine API; prints the HTTP status then the body.
api() { curl -sS --unix-socket "$1" -o "$tmp/api.out" -w '%{http_code}' "http://localhost/v1.41$2"; }

# --- daemons and bases -----------------------------------------------------
section "private dockerds kb1, kb2; busybox and no-shell bases"
"$dockerd" purge kb1 >/dev/null 2>&1
"$dockerd" purge kb2 >/dev/null 2>&1
sock1=$("$dockerd" start kb1) || { echo "FAIL: dockerd kb1 did not start"; exit 1; }
sock2=$("$dockerd" start kb2) || { echo "FAIL: dockerd kb2 did not start"; exit 1; }

mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/tmp" "$tmp/rootfs/etc" "$tmp/noshell"
cp /bin/busybox "$tmp/rootfs/bin/busybox"
for a in sh echo cat sleep ls date true false; do ln -s busybox "$tmp/rootfs/bin/$a"; done
echo "root:x:0:0:root:/:/bin/sh" >"$tmp/rootfs/etc/passwd"
tar -C "$tmp/rootfs" -cf "$tmp/busybox.tar" .
echo "this image has no /bin/sh: every RUN fails" >"$tmp/noshell/README"
tar -C "$tmp/noshell" -cf "$tmp/noshell.tar" .
import() {  # import SOCKET TAR REPO TAG
  curl -fsS --unix-socket "$1" -X POST -H 'Content-Type: application/x-tar' --data-binary "@$2" \
    "http://localhost/v1.41/images/create?fromSrc=-&repo=$3&tag=$4" >/dev/null &&
    curl -fsS --unix-socket "$1" -X POST "http://localhost/v1.41/images/$3:$4/tag?repo=$3&tag=$5" >/dev/null
}
for s in "$sock1" "$sock2"; do
  import "$s" "$tmp/busybox.tar" kiln-test/busybox 12 13 || { echo "FAIL: import busybox base"; exit 1; }
  import "$s" "$tmp/noshell.tar" kiln-test/noshell 1 1 || { echo "FAIL: import no-shell base"; exit 1; }
done

# A matrix variant: mk NAME [extra TOML appended] -- the test matrix renamed,
# bases as given by BASE12/BASE13 (default busybox).
mk() {
  local name=$1 extra=${2:-}
  sed -e "s/^name = \"bt\"/name = \"$name\"/" \
      -e "s|kiln-test/busybox:12|${BASE12:-kiln-test/busybox:12}|" \
      -e "s|kiln-test/busybox:13|${BASE13:-kiln-test/busybox:13}|" "$data/matrices/offline.toml" >"$tmp/$name.toml"
  printf '%s\n' "$extra" >>"$tmp/$name.toml"
  echo "$tmp/$name.toml"
}
K() { "$kiln" --data-dir "${DATA:-$data}" "$@"; }
R118=cuda11.8-debian12-runtime D118=cuda11.8-debian12-devel
R124=cuda12.4-debian13-runtime D124=cuda12.4-debian13-devel
outcome() { json "$1" "{s['id']: s['outcome'] for s in d['combos']}['$2']"; }
# outcomes FILE: "id=outcome ..." sorted by id (D118 R118 D124 R124).
outcomes() { json "$1" "' '.join(sorted(s['id'] + '=' + s['outcome'] for s in d['combos']))"; }
expect() { echo "$D118=$1 $R118=$2 $D124=$3 $R124=$4"; }
field() { json "$1" "{s['id']: s for s in d['combos']}['$2']['$3']"; }

# --- 1. DAG order, stage sharing, incremental --------------------------------
section "1. DAG order, shared runtime stage, incremental rerun (engine backend, DOCKER_HOST)"
export DOCKER_HOST=unix://$sock1
m=$(mk bt1)
st=$tmp/st1
K build "$m" --state-dir "$st" --format json >"$tmp/b1.json" 2>"$tmp/b1.err"
check "first build exits 0" test $? -eq 0
check "4 stages built" test "$(json "$tmp/b1.json" "d['summary']['built']")" -eq 4
# Each runtime finished before its devel started (ledger times, ms).
for pair in "$R118 $D118" "$R124 $D124"; do
  set -- $pair
  rf=$(sql "$st" "select finished_at from builds where stage_id = '$1' and status = 'built'")
  ds=$(sql "$st" "select started_at from builds where stage_id = '$2' and status = 'built'")
  check "DAG order: $1 finished ($rf) before $2 started ($ds)" test "$rf" -le "$ds"
done
check "each stage built once (4 attempts in the ledger)" test "$(sql "$st" "select count(*) from builds")" -eq 4
# The devel image is the runtime image plus layers: its layer list starts with the runtime's.
layers() { api "$sock1" "/images/$1/json" >/dev/null && python3 -c 'import json; print(" ".join(json.load(open("'"$tmp/api.out"'"))["RootFS"]["Layers"]))'; }
for pair in "$R118 $D118" "$R124 $D124"; do
  set -- $pair
  rl=$(layers "kiln.local/bt1:$1"); dl=$(layers "kiln.local/bt1:$2")
  check "stage sharing: $2's layers start with $1's ($(wc -w <<<"$rl") of $(wc -w <<<"$dl"))" \
    test -n "$rl" -a "${dl#"$rl"}" != "$dl"
done
# The devel stage read its parent's /kiln-runtime-id (it fails otherwise); and its
# parent in the engine's history is the runtime image.
hist=$(api "$sock1" "/images/kiln.local/bt1:$D124/history" >/dev/null; python3 -c 'import json; print(" ".join(h["Id"] for h in json.load(open("'"$tmp/api.out"'"))))')
rid=$(field "$tmp/b1.json" "$R124" image_id)
check "the devel image's history holds the runtime image $rid" grep -q -- "$rid" <<<"$hist"
ids_before=$(api "$sock1" "/images/json" >/dev/null; python3 -c 'import json; print(sorted(i["Id"] for i in json.load(open("'"$tmp/api.out"'"))))')

K build "$m" --state-dir "$st" --format json >"$tmp/b1b.json" 2>/dev/null
check "rerun exits 0" test $? -eq 0
check "rerun: all 4 cached" test "$(json "$tmp/b1b.json" "d['summary']['cached']")" -eq 4
check "rerun: no new build attempt in the ledger" test "$(sql "$st" "select count(*) from builds")" -eq 4
ids_after=$(api "$sock1" "/images/json" >/dev/null; python3 -c 'import json; print(sorted(i["Id"] for i in json.load(open("'"$tmp/api.out"'"))))')
check "rerun: the engine's image list is unchanged (nothing built)" test "$ids_before" == "$ids_after"
check "rerun: same image ids as the first build" test \
  "$(json "$tmp/b1.json" "[s['image_id'] for s in d['combos']]")" == "$(json "$tmp/b1b.json" "[s['image_id'] for s in d['combos']]")"
K status "$m" --state-dir "$st" --format json >"$tmp/s1.json"
check "status: all 4 built" test "$(json "$tmp/s1.json" "sorted(set(c['status'] for c in d['combos']))")" == '["built"]'
check "status: devel's stages are runtime then devel" test \
  "$(json "$tmp/s1.json" "[c['stages'] for c in d['combos'] if c['id'] == '$D118'][0]")" == "[\"$R118\", \"$D118\"]"

# An image gone from the engine is rebuilt; its child's input (parent id) changes too.
curl -fsS --unix-socket "$sock1" -X DELETE "http://localhost/v1.41/images/kiln.local/bt1:$D118?force=1" >/dev/null
K build "$m" --state-dir "$st" --format json >"$tmp/b1c.json" 2>/dev/null
check "image removed from the engine: only it is rebuilt" test \
  "$(outcomes "$tmp/b1c.json")" == "$(expect built cached cached cached)"
# --only: a devel stage brings its (cached) parent along, nothing else.
K build "$m" --state-dir "$st" --format json --only 'cuda12.4-*-devel' >"$tmp/b1d.json" 2>/dev/null
check "--only 'cuda12.4-*-devel': its parent comes along, both cached" test \
  "$(json "$tmp/b1d.json" "[(s['id'], s['outcome']) for s in d['combos']]")" == "[[\"$R124\", \"cached\"], [\"$D124\", \"cached\"]]"

# --- 2. engine missing / refusing: exit 2, ledger untouched -----------------
section "2. engine missing or refusing: exit 2, clear message, no ledger damage"
cp "$st/state.db" "$tmp/state-before.db" 2>/dev/null
before=$(sql "$st" "select id, status, image_id from builds order by id")
DOCKER_HOST=unix://$tmp/no-such.sock K build "$m" --state-dir "$st" >"$tmp/b2.out" 2>"$tmp/b2.err"
rc=$?
check "missing socket: exit 2 (got $rc)" test $rc -eq 2
check "missing socket: message names the socket" grep -q "cannot reach the engine at unix://$tmp/no-such.sock" "$tmp/b2.err"
python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.bind('$tmp/refuse.sock')"  # bound, never listening: refuses
DOCKER_HOST=unix://$tmp/refuse.sock K build "$m" --state-dir "$st" >/dev/null 2>"$tmp/b2b.err"
rc=$?
check "refusing socket: exit 2 (got $rc)" test $rc -eq 2
check "refusing socket: message names the engine" grep -q "refuse.sock" "$tmp/b2b.err"
m2=$(mk bt1r "[runners.gone]
engine = \"unix://$tmp/no-such.sock\"")
sed -i 's/^name = "bt1r"/name = "bt1"/' "$m2"
K build "$m2" --state-dir "$st" >/dev/null 2>"$tmp/b2c.err"
rc=$?
check "matrix runner with a missing socket: exit 2 (got $rc), names the runner" test $rc -eq 2 -a -n "$(grep "engine 'gone'" "$tmp/b2c.err")"
check "ledger: same attempts as before" test "$before" == "$(sql "$st" "select id, status, image_id from builds order by id")"
check "ledger: integrity_check ok" test "$(sql "$st" "pragma integrity_check")" == ok
check "ledger: still all built" test "$(K status "$m" --state-dir "$st" --format json | python3 -c 'import json,sys; print(sorted(set(c["status"] for c in json.load(sys.stdin)["combos"])))')" == "['built']"

# --- 3. failure isolation ---------------------------------------------------
section "3. failure isolation: a base without /bin/sh fails one runtime stage"
m=$(BASE13=kiln-test/noshell:1 mk bt3)
st=$tmp/st3
K build "$m" --state-dir "$st" >"$tmp/b3.out" 2>"$tmp/b3.err"
rc=$?
check "exit 1 (got $rc)" test $rc -eq 1
K build "$m" --state-dir "$tmp/st3b" --format json >"$tmp/b3.json" 2>/dev/null
check "the other OS's pair built" test "$(outcome "$tmp/b3.json" $R118)/$(outcome "$tmp/b3.json" $D118)" == built/built
check "$R124 failed" test "$(outcome "$tmp/b3.json" $R124)" == failed
check "its devel skipped, naming the failed parent" test \
  "$(outcome "$tmp/b3.json" $D124): $(field "$tmp/b3.json" $D124 error)" == "skipped: not built: $R124 failed"
step=$(field "$tmp/b3.json" $R124 failed_step)
log=$(field "$tmp/b3.json" $R124 log)
check "the failed step is the RUN ($step)" grep -q "RUN echo $R124" <<<"$step"
check "the log exists and holds the engine's error ($log)" grep -qi "no such file\|not found\|executable file" "$log"
check "the table names the step and the log" grep -q "$R124 .*failed.*RUN echo.*(log: .*$R124.log)" "$tmp/b3.out"
check "the progress line names the step and the log" grep -q "FAILED  $R124 at \"Step .*RUN echo.*(log: " "$tmp/b3.err"
K status "$m" --state-dir "$st" --format json >"$tmp/s3.json"
check "status: devel skipped because of the failed runtime" test \
  "$(json "$tmp/s3.json" "[(c['status'], '$R124 failed' in c['build']['error']) for c in d['combos'] if c['id'] == '$D124'][0]")" == '["skipped", true]'
check "status: runtime failed, with its log" test \
  "$(json "$tmp/s3.json" "[(c['status'], c['build']['log'].endswith('$R124.log')) for c in d['combos'] if c['id'] == '$R124'][0]")" == '["failed", true]'
# --fail-fast: the first root fails, nothing else starts.
m=$(BASE12=kiln-test/noshell:1 mk bt3f)
K build "$m" --state-dir "$tmp/st3f" -j 1 --fail-fast --format json >"$tmp/b3f.json" 2>/dev/null
rc=$?
check "--fail-fast: exit 1 (got $rc), 1 failed, 3 skipped" test "$rc $(json "$tmp/b3f.json" "(d['summary']['failed'], d['summary']['skipped'])")" == "1 [1, 3]"
check "--fail-fast: $R124 not started" grep -q "fail-fast" <<<"$(field "$tmp/b3f.json" $R124 error)"
check "--fail-fast: nothing of it was built" test "$(sql "$tmp/st3f" "select count(*) from builds where status = 'built'")" -eq 0
# Without --fail-fast the same matrix builds the other pair.
K build "$m" --state-dir "$tmp/st3g" -j 1 --format json >"$tmp/b3g.json" 2>/dev/null
check "without --fail-fast: the debian13 pair is built" test "$(outcome "$tmp/b3g.json" $R124)/$(outcome "$tmp/b3g.json" $D124)" == built/built

# --- 4. two engines, both backends ------------------------------------------
section "4. two engines (kb1 engine API, kb2 buildx): roots spread, children on their parent's engine"
unset DOCKER_HOST
m=$(mk bt4 "[runners.one]
engine = \"unix://$sock1\"
backend = \"engine\"

[runners.two]
engine = \"unix://$sock2\"
backend = \"buildx\"")
st=$tmp/st4
K build "$m" --state-dir "$st" --format json >"$tmp/b4.json" 2>"$tmp/b4.err"
rc=$?
check "exit 0 (got $rc)" test $rc -eq 0
[[ $rc -eq 0 ]] || { cat "$tmp/b4.err"; json "$tmp/b4.json" "d['combos']"; }
e=$(json "$tmp/b4.json" "{s['id']: s['engine'] for s in d['combos']}")
check "roots on different engines, devel with its parent ($e)" test \
  "$(field "$tmp/b4.json" $R118 engine) $(field "$tmp/b4.json" $D118 engine) $(field "$tmp/b4.json" $R124 engine) $(field "$tmp/b4.json" $D124 engine)" == "one one two two"
check "backends in the ledger: engine on kb1, buildx on kb2" test \
  "$(sql "$st" "select distinct engine || ' ' || backend from builds order by 1" | tr '\n' ,)" == "unix://$sock1 engine,unix://$sock2 buildx,"
for pair in "$sock1 $R118 $sock2" "$sock1 $D118 $sock2" "$sock2 $R124 $sock1" "$sock2 $D124 $sock1"; do
  set -- $pair
  check "kiln.local/bt4:$2 is on $(basename "$(dirname "$1")") only" test "$(api "$1" "/images/kiln.local/bt4:$2/json")/$(api "$3" "/images/kiln.local/bt4:$2/json")" == 200/404
done
check "buildx built the devel FROM its runtime (layers)" test -n "$(api "$sock2" "/images/kiln.local/bt4:$D124/json" >/dev/null; \
  python3 -c 'import json; print("x" if len(json.load(open("'"$tmp/api.out"'"))["RootFS"]["Layers"]) >= 3 else "")')"
check "buildx image id matches the engine's" test "$(field "$tmp/b4.json" $D124 image_id)" == \
  "$(api "$sock2" "/images/kiln.local/bt4:$D124/json" >/dev/null; python3 -c 'import json; print(json.load(open("'"$tmp/api.out"'"))["Id"])')"
K build "$m" --state-dir "$st" --format json >"$tmp/b4b.json" 2>/dev/null
check "rerun on two engines: all 4 cached" test "$(json "$tmp/b4b.json" "d['summary']['cached']")" -eq 4
# A narrower rerun keeps each root on the engine that built it (its image is there).
K build "$m" --state-dir "$st" --format json --only 'cuda12.4-*' >"$tmp/b4d.json" 2>/dev/null
check "--only 'cuda12.4-*' after a two-engine build: cached on two, not rebuilt on one" test \
  "$(json "$tmp/b4d.json" "[(s['outcome'], s['engine']) for s in d['combos']]")" == '[["cached", "two"], ["cached", "two"]]'
K build "$m" --state-dir "$tmp/st4x" --builder two --format json >"$tmp/b4c.json" 2>/dev/null
check "--builder two (buildx only): 4 stages, all on two" test \
  "$(json "$tmp/b4c.json" "sorted(set(s['engine'] for s in d['combos'])) + [d['summary']['built'] + d['summary']['cached']]")" == '["two", 4]'

# --- 5. kill -9 mid-build, then resume --------------------------------------
section "5. kill -9 while the devel stages build; the rerun does only what was left"
slow_data() {  # slow_data SECONDS: a copy of the data dir whose devel stages sleep that long
  local dir=$tmp/data-slow$1
  mkdir -p "$dir"
  cp -r "$data/templates" "$dir/templates"
  ln -s "$data/recipes" "$dir/recipes"
  echo "{{#devel}}RUN sleep $1{{/devel}}" >"$dir/templates/partials/slow-step.mustache"
  echo "$dir"
}
slow=$(slow_data 8)
export DOCKER_HOST=unix://$sock1
m=$(mk bt5)
st=$tmp/st5
wait_for() {  # wait_for SECONDS COMMAND...: poll every 0.2 s
  local until=$(( $(date +%s) + $1 )); shift
  while ! "$@"; do [[ $(date +%s) -lt $until ]] || return 1; sleep 0.2; done
}
devels_building() { test "$(sql "$st" "select count(*) from builds where status = 'building' and stage_id like '%devel'" 2>/dev/null)" == 2; }
"$kiln" --data-dir "$slow" build "$m" --state-dir "$st" --format json >"$tmp/b5.json" 2>"$tmp/b5.err" &
pid=$!
bg_pids+=("$pid")
if wait_for 60 devels_building; then
  sleep 1
  kill -9 "$pid"
  wait "$pid" 2>/dev/null
  pass "kiln killed with both devel stages building"
  check "ledger after the kill: 2 runtime built, 2 devel building" test \
    "$(sql "$st" "select status, count(*) from builds group by status order by 1" | tr '\n' ,)" == "building|2,built|2,"
  t0=$(date +%s)
  DATA=$slow K build "$m" --state-dir "$st" --format json >"$tmp/b5b.json" 2>"$tmp/b5b.err"
  check "rerun exits 0" test $? -eq 0
  check "rerun: runtime cached, devel built" test \
    "$(outcomes "$tmp/b5b.json")" == \
    "$(expect built cached built cached)"
  check "ledger: the killed attempts are interrupted" test \
    "$(sql "$st" "select stage_id, status from builds where status not in ('built') order by stage_id" | tr '\n' ,)" == "$D118|interrupted,$D124|interrupted,"
  check "ledger: 6 attempts (4 + 2 redone), no building left" test \
    "$(sql "$st" "select count(*), sum(status = 'building') from builds")" == "6|0"
else
  fail "the devel stages never reached building: $(cat "$tmp/b5.err")"
fi

# --- 6. engine restarted mid-build ------------------------------------------
section "6. the engine restarts while the devel stages build; the rerun rebuilds only them"
# dockerd's shutdown gives running containers 10 s: the step must outlast that.
slow=$(slow_data 40)
m=$(mk bt6)
st=$tmp/st6
"$kiln" --data-dir "$slow" build "$m" --state-dir "$st" --format json >"$tmp/b6.json" 2>"$tmp/b6.err" &
pid=$!
bg_pids+=("$pid")
if wait_for 60 devels_building; then
  sleep 1
  "$dockerd" stop kb1 >/dev/null
  wait "$pid"
  rc=$?
  "$dockerd" start kb1 >/dev/null
  check "kiln exits 2: the engine went away (got $rc)" test $rc -eq 2
  check "runtime built, devel failed" test \
    "$(outcomes "$tmp/b6.json")" == \
    "$(expect failed built failed built)"
  check "the failure says why ($(field "$tmp/b6.json" $D118 error | head -c 120))" test -n "$(field "$tmp/b6.json" $D118 error)"
  DATA=$slow K build "$m" --state-dir "$st" --format json >"$tmp/b6b.json" 2>/dev/null
  check "rerun after the restart exits 0" test $? -eq 0
  check "rerun: runtime cached, devel built" test \
    "$(outcomes "$tmp/b6b.json")" == \
    "$(expect built cached built cached)"
else
  fail "the devel stages never reached building: $(cat "$tmp/b6.err")"
fi

section "done: $fails failed"
[[ $fails -eq 0 ]]
