#!/usr/bin/env bash
# The portable smoke unit on the GPU host (issue 16's "done when"), one call:
#   0. docker-registry on 127.0.0.1:5000 (scripts/gpu-registry.sh), Podman,
#      the host base, kiln and the matrices (scripts/gpu-verify.sh, sourced);
#   1. per matrix (gpu-host: sm_90, gpu-host-sm75: sm_75 SASS only):
#      kiln build, then the state copied: A verifies with kiln, B does not;
#   2. A: `kiln verify` (kiln runs the smoke suite through Podman's API);
#   3. B: `kiln export units --runner gpuhost` (the smoke image pushed by
#      digest), the unit's podman command line run by hand, outside kiln, its
#      JSON ingested with `kiln verify --ingest`, then `kiln verify`; a second
#      `kiln verify` must record nothing (no GPU time: the ledger's rows);
#   4. a table: A's verdict against B's, per combination.
# Results go to $OUT (and bench/results/ when KILN_KEEP_RESULTS=1).
# Run on the GPU host 2026-12-01: bench/results/2026-12-01-H200-units-*.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OUT=${OUT:-$ROOT/build/gpu-units-out}
export KILN_WORK=${KILN_WORK:-/var/tmp/kiln-gpu-units}
mkdir -p "$OUT" "$KILN_WORK"
# shellcheck source=gpu-registry.sh
source "$ROOT/scripts/gpu-registry.sh"
# shellcheck source=gpu-verify.sh
source "$ROOT/scripts/gpu-verify.sh"
LOG_TAG=gpu-units
log() { echo "[$LOG_TAG $(el "$T0")s] $*" | tee -a "$LOG" >&2; }
registry_check
rows() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from verdicts').fetchone()[0])" "$1/state.db"; }

for m in gpu-host gpu-host-sm75; do
  mf=$WORK/matrices/$m.toml
  A=$WORK/units-$m-A B=$WORK/units-$m-B
  rm -rf "$A" "$B"
  kiln build "$mf" --state-dir "$A" --format json >"$OUT/$m-build.json" 2>>"$LOG" || log "kiln build $m: exit $?"
  cp -a "$A" "$B"
  t=$(date +%s.%N)
  kiln verify "$mf" --state-dir "$A" --format json --timeout 150 >"$OUT/$DATE-$GPU_SLUG-units-$m-kiln-verify.json" 2>>"$LOG"
  log "A: kiln verify $m: exit $? in $(el "$t") s"
  t=$(date +%s.%N)
  kiln export units "$mf" --runner gpuhost --staging "$REG_ADDR/kiln-units/$m" --state-dir "$B" --timeout 150 \
    -o "$OUT/$DATE-$GPU_SLUG-units-$m.json" 2>"$OUT/$m-export.err"
  log "B: kiln export units $m: exit $? in $(el "$t") s; $(tr '\n' ' ' <"$OUT/$m-export.err")"
  # The unit's own command line, with this script's Podman storage flags.
  python3 -c "import json,sys; [print(u['commands']['podman']) for u in json.load(open(sys.argv[1]))['units']]" \
    "$OUT/$DATE-$GPU_SLUG-units-$m.json" >"$WORK/$m-cmds.txt" 2>/dev/null
  n=0
  while IFS= read -r cmd; do
    n=$((n + 1))
    cmd=${cmd/ podman run / podman --root $STORE --runroot $RUNROOT --storage-driver overlay run }
    echo "$cmd" >>"$OUT/$m-unit-commands.txt"
    t=$(date +%s.%N)
    eval "$cmd" >"$OUT/$DATE-$GPU_SLUG-units-$m-result-$n.json" 2>>"$LOG"
    log "B: plain podman run of unit $n of $m: exit $? in $(el "$t") s"
    kiln verify "$mf" --state-dir "$B" --ingest "$OUT/$DATE-$GPU_SLUG-units-$m-result-$n.json" --format json \
      >"$OUT/$DATE-$GPU_SLUG-units-$m-ingest-$n.json" 2>>"$LOG"
    log "B: ingest: exit $?"
  done <"$WORK/$m-cmds.txt"
  t=$(date +%s.%N)
  kiln verify "$mf" --state-dir "$B" --format json --timeout 150 >"$OUT/$DATE-$GPU_SLUG-units-$m-verify-after-ingest.json" 2>>"$LOG"
  log "B: kiln verify after ingest: exit $? in $(el "$t") s"
  before=$(rows "$B")
  t=$(date +%s.%N)
  kiln verify "$mf" --state-dir "$B" --format json --timeout 150 >"$OUT/$DATE-$GPU_SLUG-units-$m-verify-second.json" 2>>"$LOG"
  log "B: second kiln verify: exit $? in $(el "$t") s; ledger rows $before -> $(rows "$B")"
  echo "$m $before $(rows "$B")" >>"$WORK/rows.txt"
done

python3 - "$OUT" "$DATE-$GPU_SLUG" "$WORK/rows.txt" <<'PY' | tee "$OUT/$DATE-$GPU_SLUG-units-table.txt"
import json, sys
out, stem, rows_file = sys.argv[1:4]
rows = {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in open(rows_file)}
ok = True
print("matrix / combination | kiln verify | unit + ingest + verify | second verify reused all, rows unchanged | where")
for m in ("gpu-host", "gpu-host-sm75"):
    try:
        a = {c["id"]: c for c in json.load(open(f"{out}/{stem}-units-{m}-kiln-verify.json"))["combos"]}
        b = {c["id"]: c for c in json.load(open(f"{out}/{stem}-units-{m}-verify-after-ingest.json"))["combos"]}
        s = {c["id"]: c for c in json.load(open(f"{out}/{stem}-units-{m}-verify-second.json"))["combos"]}
    except Exception as e:
        print(f"{m}: missing document ({e})"); ok = False; continue
    for cid in a:
        same = a[cid]["verified"] == b.get(cid, {}).get("verified")
        reused = all(k["reused"] for k in s.get(cid, {}).get("checks", [])) and rows[m][0] == rows[m][1]
        where = [k["detail"].get("placement", {}) for k in b.get(cid, {}).get("checks", []) if k["check"] == "gpu"]
        w = "; ".join(f"{p.get('scheduler')} {p.get('node')} {p.get('gpu_count')} x {p.get('gpu_model')} driver {p.get('driver')}" for p in where)
        print(f"{m} / {cid} | {a[cid]['verified']} | {b.get(cid, {}).get('verified')} | {reused} | {w or b.get(cid, {}).get('reason')}")
        ok &= same and reused
want = {"gpu-host": True, "gpu-host-sm75": False}
print("expected: sm_90 verified by both, the sm_75-only image refused by both; second verify spends no GPU time ->",
      "yes" if ok else "NO")
sys.exit(0 if ok else 1)
PY
RC=${PIPESTATUS[0]}
if [ "${KILN_KEEP_RESULTS:-0}" = 1 ]; then cp "$OUT/$DATE-$GPU_SLUG"-units-* "$ROOT/bench/results/" 2>/dev/null; fi
exit "$RC"
