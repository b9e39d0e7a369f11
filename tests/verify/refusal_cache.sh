#!/usr/bin/env bash
# A gpu check refused from the arch list (a runner whose GPU class the
# image cannot serve) runs no container; a second verify of the same image
# finds the same refusal on record and records nothing (the verdict cache
# covers passes and these refusals), as on the GPU host's sm_75-only image.
# Needs the offline CUDA 12.4 runtime image (offline_cuda_build).
set -uo pipefail
kiln=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
img=kiln.local/offline:cuda12.4-debian13-runtime
if ! docker image inspect "$img" >/dev/null 2>&1; then
  echo "refusal cache: $img is not on the engine (run offline_cuda_build); skipped"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$src/matrices/offline.toml" "$tmp/m.toml"
cat >>"$tmp/m.toml" <<'TOML'

[runners.kepler]
backend = "engine"
gpu = "nvidia"
gpu_classes = ["sm_35"]
TOML
rows() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from verdicts').fetchone()[0])" "$tmp/st/state.db"; }
fails=0
check() { local what=$1; shift; if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; fails=$((fails + 1)); fi; }
V() { "$kiln" --data-dir "$src" verify "$tmp/m.toml" --only cuda12.4-debian13-runtime --state-dir "$tmp/st" --format json; }
V >"$tmp/1.json" 2>"$tmp/1.err"; rc=$?
first=$(rows)
check "first verify: refused, exit 1 (got $rc)" test "$rc" -eq 1
check "the kepler gpu check is a refusal naming sm_35" python3 -c "
import json,sys; d=json.load(open('$tmp/1.json'))
k=[k for c in d['combos'] for k in c['checks'] if k['check']=='gpu' and k['runner']=='kepler']
sys.exit(0 if k and k[0]['status']=='failed' and 'sm_35' in k[0]['problems'][0] else 1)"
V >"$tmp/2.json" 2>"$tmp/2.err"; rc=$?
check "second verify: exit 1 again (got $rc)" test "$rc" -eq 1
check "and records nothing (verdict rows $first -> $(rows))" test "$(rows)" -eq "$first"
check "every check reused" python3 -c "
import json,sys; d=json.load(open('$tmp/2.json'))
sys.exit(0 if all(k['reused'] for c in d['combos'] for k in c['checks']) else 1)"
echo "refusal cache: $fails failed"
[ "$fails" -eq 0 ]
