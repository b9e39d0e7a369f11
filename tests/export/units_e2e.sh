#!/usr/bin/env bash
# The portable smoke unit end to end on this machine's engine and registry
# (no GPU here): `kiln export` builds the smoke suite once and pushes the
# release and smoke images by digest; the unit's own docker command line runs
# outside kiln and says "no usable GPU"; `kiln verify --ingest` records that
# real JSON as no-gpu and refuses a wrong digest, a wrong suite hash and a
# result without a GPU model; a pass claimed for the right digest (a JSON this
# test writes: there is no GPU here) makes the gpu runner's verdict, and a
# second `kiln verify` runs nothing. The Kubernetes Jobs are loaded into the
# Kubernetes Python client's models; the CI matrices are read back.
# Usage: units_e2e.sh KILN
set -uo pipefail
kiln=$(realpath "$1")
tmp=$(mktemp -d)
staging=127.0.0.1:5000/kiln-test-units/offline
cleanup() {
  # The local names the pushes made (the images themselves stay: layers are shared).
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^${staging}" | xargs -r docker rmi >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
check() { local n=$1; shift; if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $n"; fi; }
py() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"; }

sock=$(scripts/start-engine.sh) || { echo "units: no engine"; echo "0 passed, 1 failed"; exit 1; }
export DOCKER_HOST=unix://$sock
scripts/start-registry.sh >/dev/null || { echo "units: no registry (scripts/start-registry.sh)"; echo "0 passed, 1 failed"; exit 1; }
scripts/make-bases.sh 13 >"$tmp/bases.log" 2>&1 || { tail -20 "$tmp/bases.log"; echo "0 passed, 1 failed"; exit 1; }

# The repository's data, the offline matrix given GPU runner classes: `local`
# (this machine, no GPU) and `gpu` (a GPU runner this machine does not have:
# its verdict can only come from a result taken in).
data=$tmp/data
mkdir -p "$data"
cp -r recipes templates matrices kernels "$data/"
m=$data/matrices/offline.toml
cat >>"$m" <<'TOML'
gpu_classes = ["sm_90"]

[runners.gpu]
backend = "engine"
gpu = "nvidia"
gpu_classes = ["sm_90"]
gpu_product = "NVIDIA-H200"
gpus = 2
shm_size = "2g"
TOML
state=$tmp/state
k() { "$kiln" --data-dir "$data" "$@"; }
combo=cuda12.4-debian13-runtime

k build "$m" --only 'cuda12.4-debian13-*' --state-dir "$state" >"$tmp/build.log" 2>&1
check "build exit 0" test $? -eq 0

# --- the units -----------------------------------------------------------
k export units "$m" --only "$combo" --staging "$staging" --state-dir "$state" -o "$tmp/units.json" 2>"$tmp/export.err"
rc=$?  # before the check's own $(tail): a command substitution would reset $?
check "export units exit 0 (got $rc: $(tail -3 "$tmp/export.err" | tr '\n' ' '))" test $rc -eq 0
check "one unit per runner class, images by digest" py "$tmp/units.json" \
  "sorted(u['runner'] for u in j['units'])==['gpu','local'] and all('@sha256:' in u['image'] and '@sha256:' in u['smoke_image'] for u in j['units'])"
check "the gpu runner's unit asks for 2 GPUs, 2 GiB /dev/shm, attaches them with --gpus" py "$tmp/units.json" \
  "[(u['gpus'], u['shm_size'], '--gpus 2' in u['commands']['docker'], '--gres=gpu:2' in u['commands']['pyxis']) for u in j['units'] if u['runner']=='gpu']==[(2, 2<<30, True, True)]"
k export units "$m" --only "$combo" --staging "$staging" --state-dir "$state" -o "$tmp/units2.json" 2>/dev/null
check "a second export compiles no suite and pushes the same digests" python3 -c "
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
sys.exit(0 if b['suites_built'] == 0 and [u['smoke_image'] for u in a['units']] == [u['smoke_image'] for u in b['units']] else 1)" \
  "$tmp/units.json" "$tmp/units2.json"
check "the staged release image is the built one" bash -c "[[ \$(docker image inspect --format '{{.Id}}' kiln.local/offline:$combo) == \$(python3 -c \"import json; print(json.load(open('$tmp/units.json'))['units'][0]['image_id'])\") ]]"

# --- the local unit's command line, run outside kiln ------------------------
cmd=$(python3 -c "import json,sys; print([u for u in json.load(open(sys.argv[1]))['units'] if u['runner']=='local'][0]['commands']['docker'])" "$tmp/units.json")
docker rmi "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['units'][0]['smoke_image'])" "$tmp/units.json")" >/dev/null 2>&1  # pulled by digest, as a scheduler would
eval "$cmd" >"$tmp/result.json" 2>"$tmp/result.err"
rc=$?
check "the unit says no usable GPU: exit 3 (got $rc)" test "$rc" -eq 3
check "one kiln.smoke-unit/v1 document naming the image id, suite hash and runner" python3 -c "
import json, sys
r, u = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))['units'][0]
ok = r['schema'] == 'kiln.smoke-unit/v1' and r['image_id'] == u['image_id'] and r['suite_hash'] == u['suite_hash']
ok &= r['runner'] == 'local' and r['programs']['kiln-smoke']['exit_code'] == 3
ok &= r['programs']['kiln-smoke']['report']['gpu']['usable'] is False
sys.exit(0 if ok else 1)" "$tmp/result.json" "$tmp/units.json"

# --- ingest ------------------------------------------------------------------
k verify "$m" --ingest "$tmp/result.json" --state-dir "$state" --format json >"$tmp/ingest.json"
check "the real no-GPU result is accepted (exit $?)" py "$tmp/ingest.json" "j['accepted']==1 and j['results'][0]['status']=='no-gpu' and j['results'][0]['combination']=='$combo'"
variant() {  # variant NAME PYTHON-EXPRESSION-ON-r
  python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
$2
json.dump(r, open(sys.argv[2], 'w'))" "$tmp/result.json" "$tmp/$1.json"
}
variant wrong-digest "r['image_id'] = 'sha256:' + '0' * 64"
variant wrong-suite "r['suite_hash'] = 'f' * 64"
# A pass without the GPU it ran on (written by this test).
variant no-model "r['exit_code'] = 0; r['programs']['kiln-smoke']['exit_code'] = 0; r['programs']['kiln-smoke']['report']['gpu'] = {'usable': True, 'device_count': 1}"
for v in wrong-digest wrong-suite no-model; do
  k verify "$m" --ingest "$tmp/$v.json" --state-dir "$state" --format json >"$tmp/ingest-$v.json"
  rc=$?
  check "$v: refused, exit 1 (got $rc)" test "$rc" -eq 1
done
check "wrong digest: the reason names it" py "$tmp/ingest-wrong-digest.json" "'which is no built combination' in j['results'][0]['reason']"
check "wrong suite: the reason names it" py "$tmp/ingest-wrong-suite.json" "'smoke suite ffffffffffffffff' in j['results'][0]['reason']"
check "no GPU model: the reason names it" py "$tmp/ingest-no-model.json" "'names no GPU model' in j['results'][0]['reason']"
echo '{"schema": "kiln-smoke/1"' >"$tmp/broken.json"
k verify "$m" --ingest "$tmp/broken.json" --state-dir "$state" >/dev/null 2>&1
check "not JSON: exit 2" test $? -eq 2

# A pass claimed for the right digest and suite on 2 x H200, driver 580 --
# written by this test, which has no GPU: it exercises acceptance and the
# cache, it proves nothing about the image.
variant claimed "
r['exit_code'] = 0; r['runner'] = 'gpu'; r['scheduler'] = 'kubernetes'; r['node'] = 'gpu-node-7'; r['driver_release'] = '580.159.04'
s = r['programs']['kiln-smoke']; s['exit_code'] = 0; rep = s['report']; rep['exit_code'] = 0; rep['verdict'] = 'pass'
rep['gpu'] = {'usable': True, 'device_count': 2, 'error': None}
rep['sections']['env']['data']['devices'] = [{'index': i, 'name': 'NVIDIA H200', 'compute_capability': '9.0'} for i in (0, 1)]"
k verify "$m" --ingest "$tmp/claimed.json" --state-dir "$state" --format json >"$tmp/ingest-claimed.json"
check "a claimed pass with GPU facts is accepted as passed" py "$tmp/ingest-claimed.json" \
  "j['results'][0]['status']=='passed' and j['results'][0]['placement']['gpu_class']=='sm_90' and j['results'][0]['placement']['gpu_count']==2 and j['results'][0]['placement']['driver_branch']=='580'"

# --- the verdict cache ------------------------------------------------------
verdict_rows() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from verdicts').fetchone()[0])" "$state/state.db"; }
k verify "$m" --only "$combo" --state-dir "$state" --format json >"$tmp/v1.json"
check "verify: verified by its static check and the gpu runner's pass (exit $?)" py "$tmp/v1.json" "j['combos'][0]['verified']"
check "the gpu check came from the cache, where and on what it ran kept" py "$tmp/v1.json" \
  "[(c['reused'], c['detail']['placement']['node'], c['detail']['placement']['scheduler']) for c in j['combos'][0]['checks'] if c['check']=='gpu']==[(True, 'gpu-node-7', 'kubernetes')]"
rows=$(verdict_rows)
since=$(date +%s)
k verify "$m" --only "$combo" --state-dir "$state" --format json >"$tmp/v2.json"
check "second verify exit 0" test $? -eq 0
until=$(($(date +%s) + 1))
check "second verify: every check reused" py "$tmp/v2.json" "all(c['reused'] for c in j['combos'][0]['checks'])"
check "second verify recorded nothing (ledger rows $rows -> $(verdict_rows))" test "$(verdict_rows)" -eq "$rows"
created=$(docker events --since "$since" --until "$until" --filter type=container --filter event=create \
  --filter "image=kiln.local/offline-smoke:$combo" --format '{{.ID}}' | wc -l)
check "second verify started no smoke container ($created)" test "$created" -eq 0
# A changed suite: the cached pass is not the new suite's.
echo "// changed" >>"$data/kernels/src/main.cpp"
k verify "$m" --ingest "$tmp/claimed.json" --state-dir "$state" --format json >"$tmp/ingest-changed.json"
check "after a suite change the old result is refused" py "$tmp/ingest-changed.json" "'the suite changed' in j['results'][0]['reason']"
sed -i '$d' "$data/kernels/src/main.cpp"

# --- exports --------------------------------------------------------------
k export k8s "$m" --only "$combo" --staging "$staging" --state-dir "$state" --queue kiln-gpu -o "$tmp/jobs.yaml" 2>/dev/null
check "export k8s exit 0" test $? -eq 0
# Debian's python3-kubernetes lives in the system Python (a pyenv python3 first on PATH lacks it).
pyk=python3
python3 -c 'import kubernetes' 2>/dev/null || pyk=/usr/bin/python3
check "Jobs load into the Kubernetes client's models" "$pyk" tests/export/validate_k8s.py "$tmp/jobs.yaml" "$tmp/units.json" kiln-gpu
k export github-matrix "$m" --only "$combo" --staging "$staging" --state-dir "$state" --chunk 1 -o "$tmp/gh.jsonl" 2>/dev/null
check "github-matrix: one include list per chunk, the unit's exact commands" python3 -c "
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
units = {u['runner']: u for u in json.load(open(sys.argv[2]))['units']}
ok = len(docs) == 2 and all(len(d['include']) == 1 for d in docs)
for d in docs:
    e = d['include'][0]; u = units[e['runner']]
    ok &= e['run'].startswith(u['commands']['docker'] + ' > ') and e['image_digest'] == u['image'].split('@')[1]
    ok &= e['ingest'].startswith('kiln verify ') and e['ingest'].endswith('--ingest ' + e['result'])
sys.exit(0 if ok else 1)" "$tmp/gh.jsonl" "$tmp/units.json"
k export gitlab-matrix "$m" --only "$combo" --staging "$staging" --state-dir "$state" -o "$tmp/gl.yaml" 2>/dev/null
check "gitlab-matrix: parallel:matrix with the commands" python3 -c "
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
m = p['kiln-smoke-1']['parallel']['matrix']
sys.exit(0 if len(m) == 2 and all(e['KILN_RUN'].startswith('timeout ') for e in m) else 1)" "$tmp/gl.yaml"

echo "units: $passed passed, $failed failed"
((failed == 0))
