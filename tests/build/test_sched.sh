#!/usr/bin/env bash
# kiln build over several engines (issue 15.3; docs/build.md, "Several
# engines"): the real `kiln` binary and three private dockerds of its own
# (tests/support/dockerd.sh), a busybox base imported on each, and the tiny
# templates of tests/build/data/sched (metadata layers only).
#
#   test_sched.sh KILN scale     204 combinations (102 runtime + 102 devel FROM
#                                its runtime) at -j 8 over 3 engines of jobs 3;
#                                engine labels and platforms; no engine matches
#   test_sched.sh KILN failover  an engine's dockerd killed (SIGKILL) mid-run:
#                                its stages retried elsewhere, the run succeeds;
#                                then every engine killed: a clear failure
#
# Exit 0 all passed, 1 a check failed, 77 skipped (not root / no dockerd /
# no busybox-static). KILN_TEST_KEEP=1 keeps the temporary directory.
set -uo pipefail

kiln=$(realpath "${1:?usage: test_sched.sh path/to/kiln scale|failover}")
mode=${2:?usage: test_sched.sh path/to/kiln scale|failover}
src=$(cd "$(dirname "$0")/../.." && pwd)
dockerd=$src/tests/support/dockerd.sh

[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for private dockerds"; exit 77; }
command -v dockerd >/dev/null || { echo "SKIP: dockerd not installed"; exit 77; }
[[ -x /bin/busybox ]] || { echo "SKIP: no /bin/busybox (apt-get install busybox-static)"; exit 77; }

# Daemon names per mode, so both tests may run at once (ctest -j).
case "$mode" in
  scale) names=(kss1 kss2 kss3) ;;
  failover) names=(ksf1 ksf2 ksf3) ;;
  *) echo "usage: test_sched.sh KILN scale|failover" >&2; exit 2 ;;
esac

tmp=$(mktemp -d /tmp/kiln-sched-test.XXXXXX)
bg_pids=()
# Processes a SIGKILLed dockerd leaves behind (its containerd and shims) name
# its exec root in their command line: found by that path, ended by pid.
orphans_of() {
  local p
  for p in $(ls /proc | grep -E '^[0-9]+$'); do
    tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "/run/kiln-test-$1/" && echo "$p"
  done
}
cleanup() {
  local p n
  for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for n in "${names[@]}"; do
    "$dockerd" purge "$n" >/dev/null 2>&1
    for p in $(orphans_of "$n"); do kill -9 "$p" 2>/dev/null; done
  done
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
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); r = eval(sys.argv[2]); print(r if not isinstance(r, (dict, list, tuple)) else json.dumps(r))' "$1" "$2"; }
sql() { python3 -c 'import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in row))' "$1/state.db" "$2"; }

# --- daemons, base, data dir -------------------------------------------------
section "private dockerds ${names[*]}; busybox base"
socks=()
for n in "${names[@]}"; do
  "$dockerd" purge "$n" >/dev/null 2>&1
  s=$("$dockerd" start "$n") || { echo "FAIL: dockerd $n did not start"; exit 1; }
  socks+=("$s")
done
mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/tmp" "$tmp/rootfs/etc"
cp /bin/busybox "$tmp/rootfs/bin/busybox"
for a in sh echo cat sleep true; do ln -s busybox "$tmp/rootfs/bin/$a"; done
tar -C "$tmp/rootfs" -cf "$tmp/busybox.tar" .
for s in "${socks[@]}"; do
  curl -fsS --unix-socket "$s" -X POST -H 'Content-Type: application/x-tar' --data-binary "@$tmp/busybox.tar" \
    "http://localhost/v1.41/images/create?fromSrc=-&repo=kiln-test/busybox&tag=sched" >/dev/null ||
    { echo "FAIL: import the busybox base on $s"; exit 1; }
done

# The data dir: the real catalog; the install recipes with Ubuntu's devel
# image built FROM its runtime (as Debian's are), so every devel stage shares
# its runtime stage; the sched templates.
data=$tmp/data
mkdir -p "$data/recipes/install"
cp -r "$src/recipes/catalog" "$data/recipes/catalog"  # a copy: the install recipes are found beside the catalog's real path
cp "$src/recipes/install/pytorch.toml" "$data/recipes/install/"
# The catalog reads devel_from_runtime for apt recipes only: Ubuntu gets
# stand-in apt recipes (never installed: the sched templates run no apt).
python3 - "$src/recipes/install/cuda.toml" "$data/recipes/install/cuda.toml" <<'EOF'
import sys
text = open(sys.argv[1]).read()
ubuntu = '[[cuda]]\nos_family = "ubuntu"\ncuda = "*"\nmethod = "nvidia-base"\n'
assert ubuntu in text, "recipes/install/cuda.toml changed: update test_sched.sh"
rules = "".join(f'[[cuda]]\nos_family = "ubuntu"\ncuda = "{c}"\nfull = "{c}.0"\nmethod = "apt"\nruntime = ["kiln-test-runtime"]\n'
                f'devel = ["kiln-test-devel"]\ndevel_from_runtime = true\nsource = ["D1"]\n\n'
                for c in ["11.6", "11.7", "11.8", "12.1", "12.4", "12.6", "12.8", "12.9", "13.0", "13.2"])
open(sys.argv[2], "w").write(text.replace(ubuntu, rules))
EOF
cp -r "$src/tests/build/data/sched/templates" "$data/templates"
slow_data() {  # slow_data SECONDS: a copy of the data dir whose every stage sleeps that long
  local dir=$tmp/data-slow$1
  cp -a "$data" "$dir"
  echo "RUN sleep $1" >"$dir/templates/partials/slow-step.mustache"
  echo "$dir"
}

# mk NAME RUNNERS_TOML [EXTRA_TOML]: the scheduler matrix (204 combinations).
mk() {
  sed -e "s/@NAME@/$1/" "$src/tests/build/data/sched/matrix.toml" >"$tmp/$1.toml"
  printf '%s\n%s\n' "$2" "${3:-}" >>"$tmp/$1.toml"
  echo "$tmp/$1.toml"
}
runner() {  # runner NAME INDEX [extra key lines]
  printf '[runners.%s]\nengine = "unix://%s"\n%s\n' "$1" "${socks[$2]}" "${3:-}"
}
K() { "$kiln" --data-dir "${DATA:-$data}" "$@"; }

# --- scale -------------------------------------------------------------------
if [[ $mode == scale ]]; then
  section "1. 204 combinations, -j 8, 3 engines of jobs 3"
  m=$(mk ss1 "$(runner e1 0 'jobs = 3'; runner e2 1 'jobs = 3'; runner e3 2 'jobs = 3')")
  st=$tmp/st1
  n=$(K plan "$m" --format json | python3 -c 'import json,sys; print(sum(c["status"] == "valid" for c in json.load(sys.stdin)["combos"]))')
  check "the matrix has 204 valid combinations (got $n)" test "$n" -eq 204
  s0=$(date +%s)
  timeout 600 "$kiln" --data-dir "$data" build "$m" -j 8 --state-dir "$st" --format json >"$tmp/b1.json" 2>"$tmp/b1.err"
  rc=$?
  echo "     (kiln build: $(( $(date +%s) - s0 )) s)"
  check "build exits 0 (got $rc; 124 = hung)" test $rc -eq 0
  check "204 built" test "$(json "$tmp/b1.json" "d['summary']['built']")" -eq 204
  check "102 devel stages, each with its runtime as parent" test \
    "$(sql "$st" "select count(distinct combo_id) from combo_stages where position = 1")" -eq 102
  check "each stage built exactly once: 204 attempts, 204 distinct stages, all built on attempt 1" test \
    "$(sql "$st" "select count(*), count(distinct stage_id), sum(status = 'built'), max(attempt) from builds")" == "204|204|204|1"
  check "the ledger names the engine of every attempt" test \
    "$(sql "$st" "select count(*) from builds where runner in ('e1', 'e2', 'e3') and engine like 'unix://%'")" -eq 204
  check "the JSON names the same engine as the ledger for each" test "$(python3 - "$tmp/b1.json" "$st/state.db" <<'EOF'
import json, sqlite3, sys
d = json.load(open(sys.argv[1]))
led = dict(sqlite3.connect(sys.argv[2]).execute("select stage_id, runner from builds"))
print(sum(led.get(c["id"]) == c["engine"] for c in d["combos"]))
EOF
)" -eq 204
  per=$(sql "$st" "select runner, count(*) from builds group by runner order by runner" | tr '\n' ' ')
  check "every engine built some ($per)" test "$(sql "$st" "select count(distinct runner) from builds")" -eq 3
  check "every devel stage built on its runtime's engine" test "$(sql "$st" "
    select count(*) from combo_stages p join combo_stages c on c.combo_id = p.combo_id and c.position = 1 and p.position = 0
    join builds bp on bp.stage_id = p.stage_id join builds bc on bc.stage_id = c.stage_id where bp.runner = bc.runner")" -eq 102
  check "every runtime finished before its devel started" test "$(sql "$st" "
    select count(*) from combo_stages p join combo_stages c on c.combo_id = p.combo_id and c.position = 1 and p.position = 0
    join builds bp on bp.stage_id = p.stage_id join builds bc on bc.stage_id = c.stage_id where bp.finished_at <= bc.started_at")" -eq 102
  # Capacity from the ledger's own clock: at no attempt's start were more
  # than 3 attempts of its engine (or 8 in all) open.
  peaks=$(sql "$st" "select max(per), max(total) from (select
      (select count(*) from builds o where o.runner = b.runner and o.started_at <= b.started_at and o.finished_at > b.started_at) as per,
      (select count(*) from builds o where o.started_at <= b.started_at and o.finished_at > b.started_at) as total
    from builds b)")
  check "at most 3 builds at once per engine, 8 in all (peaks per engine|all: $peaks)" \
    test "${peaks%|*}" -le 3 -a "${peaks#*|}" -le 8
  for s in "${socks[@]}"; do
    c=$(curl -fsS --unix-socket "$s" "http://localhost/v1.41/images/json" | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin) for t in (i.get("RepoTags") or []) if t.startswith("kiln.local/ss1:")))')
    imgs+="$c "
  done
  check "the 204 images are on the engines that built them, once each ($imgs)" test "$(echo $imgs | tr ' ' '+' | bc)" -eq 204

  section "1b. rerun: 204 cached, each on its engine, no new attempt"
  timeout 300 "$kiln" --data-dir "$data" build "$m" -j 8 --state-dir "$st" --format json >"$tmp/b1b.json" 2>"$tmp/b1b.err"
  check "rerun exits 0" test $? -eq 0
  check "204 cached" test "$(json "$tmp/b1b.json" "d['summary']['cached']")" -eq 204
  check "no new ledger attempt" test "$(sql "$st" "select count(*) from builds")" -eq 204

  section "2. labels and platforms choose the engine"
  # e1 cuda; e2 cuda + big-disk; e3 claims linux/arm64 only. Devel images
  # need big-disk: they, and so their runtimes, go to e2; e3 builds nothing.
  m=$(mk ss2 "$(runner e1 0 'labels = ["cuda"]'; runner e2 1 'labels = ["cuda", "big-disk"]'; runner e3 2 'platform = "linux/arm64"
labels = ["cuda", "big-disk"]')" '[engine_labels]
all = ["cuda"]
devel = ["big-disk"]')
  st=$tmp/st2
  K build "$m" --only 'pytorch2.6.0-*' --only 'pytorch2.5.1-*-runtime' -j 4 --state-dir "$st" --format json >"$tmp/b2.json" 2>"$tmp/b2.err"
  rc=$?  # before the check's own $(tail): a command substitution would reset $?
  check "build exits 0 (got $rc: $(tail -n 2 "$tmp/b2.err" | tr '\n' ' '))" test $rc -eq 0
  check "nothing on the arm64 engine" test "$(sql "$st" "select count(*) from builds where runner = 'e3'")" -eq 0
  check "every devel stage on e2" test "$(sql "$st" "select count(*) from builds where stage_id like '%-devel' and runner <> 'e2'")" -eq 0
  check "2.6.0's runtimes with their devels on e2" test \
    "$(sql "$st" "select count(*) from builds where stage_id like 'pytorch2.6.0-%-runtime' and runner <> 'e2'")" -eq 0
  check "a runtime without a devel may go to e1 (runners used: $(sql "$st" "select group_concat(distinct runner) from builds"))" \
    test "$(sql "$st" "select count(*) from builds where stage_id like 'pytorch2.5.1-%' and runner = 'e1'")" -gt 0

  section "3. no engine matches: each combination fails with the reason, exit 1"
  m=$(mk ss3 "$(runner e1 0 'labels = ["cuda"]'; runner e2 1 'platform = "linux/arm64"
labels = ["cuda", "gpu"]')" '[engine_labels]
all = ["gpu"]')
  st=$tmp/st3
  timeout 120 "$kiln" --data-dir "$data" build "$m" --only 'pytorch2.6.0-*' -j 4 --state-dir "$st" --format json >"$tmp/b3.json" 2>"$tmp/b3.err"
  rc=$?
  check "exit 1 (got $rc)" test $rc -eq 1
  nr=$(json "$tmp/b3.json" "sum(c['outcome'] == 'failed' for c in d['combos'] if c['id'].endswith('runtime'))")
  nd=$(json "$tmp/b3.json" "sum(c['outcome'] == 'skipped' for c in d['combos'] if c['id'].endswith('devel'))")
  check "runtimes failed ($nr), devels skipped ($nd)" test "$nr" -gt 0 -a "$nr" -eq "$nd"
  msg=$(json "$tmp/b3.json" "[c['error'] for c in d['combos'] if c['outcome'] == 'failed'][0]")
  check "the reason names each engine ($msg)" test "$msg" == \
    "no engine can build it (needs linux/amd64 with label gpu): engine 'e1': no label gpu; engine 'e2': platform linux/arm64"
  check "the ledger records the failures" test \
    "$(sql "$st" "select count(*) from builds where status = 'failed' and error like 'no engine can build it%'")" -eq "$nr"
fi

# --- failover ----------------------------------------------------------------
wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds
  local until=$(( $(date +%s) + $1 )); shift
  while (( $(date +%s) < until )); do "$@" && return 0; sleep 0.2; done
  return 1
}
dockerd_pid() { cat "/run/kiln-test-$1/dockerd.pid"; }

if [[ $mode == failover ]]; then
  section "4. engine e2's dockerd killed mid-run: its stages retried on e1 and e3"
  slow=$(slow_data 4)
  m=$(mk sf4 "$(runner e1 0 'jobs = 2'; runner e2 1 'jobs = 2'; runner e3 2 'jobs = 2')")
  st=$tmp/st4
  "$kiln" --data-dir "$slow" build "$m" --only 'pytorch2.6.0-*' -j 6 --state-dir "$st" --format json >"$tmp/b4.json" 2>"$tmp/b4.err" &
  pid=$!
  bg_pids+=("$pid")
  # Killed once e2 builds a devel stage: its runtime's image is on e2 too, so
  # the retry needs that runtime rebuilt elsewhere first.
  e2_building() { [[ $(sql "$st" "select count(*) from builds where runner = 'e2' and status = 'building' and stage_id like '%-devel'" 2>/dev/null) -ge 1 ]]; }
  if wait_for 90 e2_building; then
    kill -9 "$(dockerd_pid ${names[1]})"
    killed_ms=$(date +%s%3N)
    s0=$(date +%s)
    wait_for 300 bash -c "! kill -0 $pid 2>/dev/null"
    wait "$pid"; rc=$?
    echo "     (kiln ended $(( $(date +%s) - s0 )) s after the kill)"
    check "the run succeeds: exit 0 (got $rc; $(tail -n 3 "$tmp/b4.err" | tr '\n' ' '))" test $rc -eq 0
    total=$(json "$tmp/b4.json" "len(d['combos'])")
    check "every combination built ($total)" test "$(json "$tmp/b4.json" "d['summary']['built']")" -eq "$total"
    check "e2's attempts in the ledger ended failed, none built after the kill" test \
      "$(sql "$st" "select count(*) from builds where runner = 'e2' and status = 'failed'")" -ge 1
    check "nothing is left building" test "$(sql "$st" "select count(*) from builds where status = 'building'")" -eq 0
    retries=$(sql "$st" "select count(*) from builds where attempt > 1 and retry_reason like '%engine ''e2''%'")
    check "the ledger shows the retries and why ($retries, e.g. $(sql "$st" "select retry_reason from builds where attempt > 1 limit 1" | head -c 140))" \
      test "$retries" -ge 1
    check "each retried stage finally built on e1 or e3" test "$(sql "$st" "
      select count(*) from builds where attempt > 1 and (status <> 'built' or runner not in ('e1', 'e3'))")" -eq 0
    check "every stage's last attempt is built" test "$(sql "$st" "
      select count(*) from builds b where id = (select max(id) from builds where stage_id = b.stage_id)
      and status <> 'built'")" -eq 0
    # kiln learns that an engine is gone by using it: a slot of e2 freed just
    # around the kill may still start a stage there, which must then fail;
    # once an attempt on e2 has failed, nothing more goes to it.
    check "what started on e2 after the kill failed" test \
      "$(sql "$st" "select count(*) from builds where runner = 'e2' and started_at > $killed_ms and status <> 'failed'")" -eq 0
    check "nothing started on e2 once an attempt there had failed" test \
      "$(sql "$st" "select count(*) from builds where runner = 'e2' and started_at > (
         select min(finished_at) from builds where runner = 'e2' and status = 'failed')")" -eq 0
    rebuilt=$(sql "$st" "select stage_id, runner from builds where status = 'built' and retry_reason like 'its image was on engine ''e2''%'" | head -n 1)
    check "a runtime whose image was on e2 was rebuilt on e1 or e3 (${rebuilt:-none})" test -n "$rebuilt" -a "${rebuilt#*|}" != e2
    if [[ -n $rebuilt ]]; then
      r=${rebuilt%|*}
      check "its devel then built on the same engine" test \
        "$(sql "$st" "select runner from builds where stage_id = '${r%-runtime}-devel' and status = 'built'")" == "${rebuilt#*|}"
    fi
    check "at most 3 attempts for any stage" test "$(sql "$st" "select max(attempt) from builds")" -le 3
    check "the JSON counts the attempts" test "$(json "$tmp/b4.json" "max(c['attempts'] for c in d['combos'])")" -ge 2
  else
    fail "e2 never started a build: $(tail -n 5 "$tmp/b4.err")"
  fi

  section "5. every engine killed mid-run: a clear failure, no hang"
  m=$(mk sf5 "$(runner e1 0 'jobs = 2'; runner e3 2 'jobs = 2')")
  st=$tmp/st5
  "$kiln" --data-dir "$slow" build "$m" --only 'pytorch2.6.0-*' -j 4 --state-dir "$st" --format json >"$tmp/b5.json" 2>"$tmp/b5.err" &
  pid=$!
  bg_pids+=("$pid")
  both_building() { [[ $(sql "$st" "select count(distinct runner) from builds where status = 'building'" 2>/dev/null) -ge 2 ]]; }
  if wait_for 60 both_building; then
    killed_ms=$(date +%s%3N)
    kill -9 "$(dockerd_pid ${names[0]})" "$(dockerd_pid ${names[2]})"
    wait_for 120 bash -c "! kill -0 $pid 2>/dev/null"
    if kill -0 "$pid" 2>/dev/null; then fail "kiln still runs 120 s after every engine died (hang)"; fi
    wait "$pid"; rc=$?
    check "exit 2: the engines failed, not the builds (got $rc)" test $rc -eq 2
    check "nothing built after the kills; nothing left building" test \
      "$(sql "$st" "select count(*) from builds where status = 'building'")" -eq 0
    check "stderr says the engines stopped answering ($(grep 'kiln: error' "$tmp/b5.err" | head -c 160))" \
      grep -q "kiln: error: .*stopped answering\|kiln: error: .*no engine can build it" "$tmp/b5.err"
    # A stage the engine finished just before the kill is recorded a moment
    # later (its image read back, on a loaded machine seconds later), so the
    # rule is on starts: nothing that started after the kills was built.
    echo "     (after the kills: $(sql "$st" "select count(*) from builds where status = 'built' and finished_at > $killed_ms") built (started before); summary $(json "$tmp/b5.json" "d['summary']"), $(json "$tmp/b5.json" "len(d['combos'])") combos)"
    check "no combination built after the kills; the others failed or skipped" test \
      "$(sql "$st" "select count(*) from builds where status = 'built' and started_at > $killed_ms")" -eq 0 -a \
      "$(json "$tmp/b5.json" "d['summary']['failed'] >= 1 and d['summary']['failed'] + d['summary']['skipped'] + d['summary']['built'] + d['summary']['cached'] == len(d['combos'])")" == True
  else
    fail "e1 and e3 never built at once: $(tail -n 5 "$tmp/b5.err")"
  fi
fi

section "done: $fails failed"
[[ $fails -eq 0 ]]
