#!/usr/bin/env bash
# Builds cuda12.4-debian13-runtime from matrices/offline.toml for real, then
# checks the image and that a rerun builds nothing. Usage: offline_build.sh KILN
set -uo pipefail
kiln=$1
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
passed=0 failed=0
check() { local n=$1; shift; if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $n"; fi; }

sock=$(scripts/start-engine.sh) || { echo "offline: no engine"; echo "0 passed, 1 failed"; exit 1; }
export DOCKER_HOST=unix://$sock
scripts/make-bases.sh 13 >"$state/bases.log" 2>&1 || { tail -20 "$state/bases.log"; echo "0 passed, 1 failed"; exit 1; }

"$kiln" build matrices/offline.toml --only cuda12.4-debian13-runtime --state-dir "$state" --format json >"$state/b1.json"
check "first build exit 0" test $? -eq 0
check "built" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); s=j['combos'][0]; sys.exit(0 if s['outcome'] in ('built','cached') and s['image_id'].startswith('sha256:') else 1)" "$state/b1.json"

img=kiln.local/offline:cuda12.4-debian13-runtime
docker image inspect "$img" --format '{{json .Config}}' >"$state/config.json"
check "NVIDIA_REQUIRE_CUDA set" grep -q 'NVIDIA_REQUIRE_CUDA=cuda>=12.4' "$state/config.json"
check "labels carry the CUDA version" grep -q '"io.kiln.cuda.version":"12.4.131"' "$state/config.json"
check "runs as kiln" grep -q '"User":"kiln"' "$state/config.json"
out=$(docker run --rm --network none "$img" sh -c 'ls /usr/lib/x86_64-linux-gnu/ | grep -E "^lib(cudart|cublas|nccl)\.so\.[0-9]+$" | sort | tr "\n" " "; ls /usr/lib/x86_64-linux-gnu/libcuda.so* 2>/dev/null | wc -l')
check "CUDA runtime, cuBLAS, NCCL inside, no driver library: $out" bash -c "[[ '$out' == *libcublas.so.12*libcudart.so.12*libnccl.so.2*0 ]]"
check "no compiler in the runtime image" bash -c "! docker run --rm --network none $img sh -c 'command -v nvcc || command -v gcc'"

"$kiln" build matrices/offline.toml --only cuda12.4-debian13-runtime --state-dir "$state" --format json >"$state/b2.json"
check "rerun builds nothing" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j['summary']['built']==0 and j['summary']['cached']==1 else 1)" "$state/b2.json"
"$kiln" status matrices/offline.toml --state-dir "$state" >"$state/status.txt"
check "status shows it built" grep -q "cuda12.4-debian13-runtime *built" "$state/status.txt"
# status finds the nearest .kiln/ from the working directory up, and only reads it.
mkdir -p "$state/project/a/b" && ln -s "$state" "$state/project/.kiln"
(cd "$state/project/a/b" && "$kiln" status "$OLDPWD/matrices/offline.toml" >"$state/status-up.txt")
check "status walks up to .kiln/" grep -q "cuda12.4-debian13-runtime *built" "$state/status-up.txt"
check "status walked up: no ledger made below" test ! -e "$state/project/a/b/.kiln" -a ! -e "$state/project/a/.kiln"

# --- audit: the built image, read from its bytes, agrees with its plan -------
"$kiln" plan matrices/offline.toml --format json >"$state/plan.json"
"$kiln" audit "docker-daemon:$img" --gpu T4 --gpu H100 --format json >"$state/audit.json"
check "audit exit 0" test $? -eq 0
check "audit agrees with the plan (targets and driver floor)" python3 -c "
import json, sys
plan = [c for c in json.load(open(sys.argv[1]))['combos'] if c['id'] == 'cuda12.4-debian13-runtime'][0]
image = json.load(open(sys.argv[2]))['images'][0]
ok = image['min_driver'] == plan['min_driver']
ok &= all(image['gpus'][g]['support'] == plan['targets'][g]['support'] for g in ('T4', 'H100'))
ok &= image['cuda_runtime']['release'] == '12.4'
sys.exit(0 if ok else 1)" "$state/plan.json" "$state/audit.json"

# --- verify: static checks pass, and without a GPU nothing is verified ------
"$kiln" build matrices/offline.toml --only cuda12.4-debian13-devel --state-dir "$state" >/dev/null
check "devel build exit 0" test $? -eq 0
"$kiln" verify matrices/offline.toml --only 'cuda12.4-debian13-*' --smoke-on-cpu --state-dir "$state" --format json >"$state/v.json"
check "verify exit 1 (nothing verified without a GPU)" test $? -eq 1
verdict() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); c={x['id']:x for x in j['combos']}; sys.exit(0 if ($1) else 1)" "$state/v.json"; }
check "static passes on both" verdict "all(k['status']=='passed' for x in c.values() for k in x['checks'] if k['check']=='static')"
check "smoke suite built and ran: no GPU, never a pass" verdict "all(k['status']=='no-gpu' and k['detail']['exit_code']==3 for x in c.values() for k in x['checks'] if k['check']=='gpu')"
check "runtime: not verified, awaiting a GPU runner" verdict "not c['cuda12.4-debian13-runtime']['verified'] and 'awaiting a GPU runner of class sm_90' in c['cuda12.4-debian13-runtime']['reason']"
check "devel: verified by its static check (its policy)" verdict "c['cuda12.4-debian13-devel']['verified']"
check "smoke binaries not in the release image" bash -c "! docker run --rm --network none $img test -e /opt/kiln-smoke/kiln-smoke"

# --- a planted defect: the image lacks NCCL its plan promises, and carries a
# wrong NVIDIA_REQUIRE_CUDA. Its static check must fail. ---------------------
data="$state/data"
mkdir -p "$data"
cp -r recipes templates matrices kernels "$data/"
sed -i 's/^name = "offline"/name = "offline-defect"/' "$data/matrices/offline.toml"
python3 - "$data/recipes/install/cuda.toml" <<'PY'
import sys; p = sys.argv[1]; s = open(p).read()
s = s.replace('runtime = ["libcudart12", "libcublas12", "libcublaslt12", "libnccl2"]', 'runtime = ["libcudart12", "libcublas12", "libcublaslt12"]')
open(p, "w").write(s)
PY
sed -i 's/NVIDIA_REQUIRE_CUDA="{{require_cuda}}"/NVIDIA_REQUIRE_CUDA="cuda>=99.0"/' "$data/templates/partials/environment.mustache"
"$kiln" --data-dir "$data" build "$data/matrices/offline.toml" --only cuda12.4-debian13-runtime --state-dir "$state" >/dev/null
check "defective image builds" test $? -eq 0
"$kiln" --data-dir "$data" verify "$data/matrices/offline.toml" --only cuda12.4-debian13-runtime --state-dir "$state" --format json >"$state/v.json"
check "defect: verify exit 1" test $? -eq 1
check "defect: static check failed" verdict "c['cuda12.4-debian13-runtime']['checks'][0]['status']=='failed' and not c['cuda12.4-debian13-runtime']['verified']"
check "defect: names the missing NCCL" verdict "any('promises NCCL 2.22.3, the image has none' in p for p in c['cuda12.4-debian13-runtime']['checks'][0]['problems'])"
check "defect: names the wrong NVIDIA_REQUIRE_CUDA" verdict "any(p.startswith('NVIDIA_REQUIRE_CUDA is \"cuda>=99.0\"') for p in c['cuda12.4-debian13-runtime']['checks'][0]['problems'])"

# --- promote: only verified images get tags; a foreign tag is never moved
# without --force; the verification record is attached ----------------------
reg=$(scripts/start-registry.sh) || { echo "FAIL: no registry"; failed=$((failed + 1)); }
repo=kiln/offline
tags() { curl -fsS "http://$reg/v2/$repo/tags/list" 2>/dev/null || echo '{}'; }
has_tag() { tags | grep -q "\"$1\""; }
lacks_tag() { ! has_tag "$1"; }
devel_tag=cuda12.4-debian13-devel
runtime_tag=cuda12.4-debian13-runtime
# A tag that already names another image (a stand-in pushed by skopeo).
skopeo copy --quiet --dest-tls-verify=false docker-daemon:kiln/debian:13 "docker://$reg/$repo:$devel_tag" >/dev/null 2>&1
check "foreign image planted at the devel tag" has_tag "$devel_tag"
foreign=$(curl -fsSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/$repo/manifests/$devel_tag" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
"$kiln" promote matrices/offline.toml --only 'cuda12.4-debian13-*' --state-dir "$state" --dry-run --format json >"$state/dry.json"
check "dry run reports the conflict" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); c={x['id']:x for x in j['combos']}; sys.exit(0 if c['$devel_tag']['tags'][0]['action']=='conflict' else 1)" "$state/dry.json"
"$kiln" promote matrices/offline.toml --only 'cuda12.4-debian13-*' --state-dir "$state" --format json >"$state/p1.json"
check "conflict: promote exit 1" test $? -eq 1
now=$(curl -fsSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/$repo/manifests/$devel_tag" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
check "conflict: the existing tag was not moved" test "$now" = "$foreign"
"$kiln" promote matrices/offline.toml --only 'cuda12.4-debian13-*' --state-dir "$state" --force --format json >"$state/p2.json"
check "--force: promote exit 1 (the runtime image is not verified)" test $? -eq 1
pj() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); c={x['id']:x for x in j['combos']}; sys.exit(0 if ($1) else 1)" "$state/p2.json"; }
check "--force: the verified devel image is tagged" pj "c['$devel_tag']['tagged'] and c['$devel_tag']['tags'][0]['action']=='pushed'"
check "--force: the runtime image is not tagged (no GPU verdict)" pj "not c['$runtime_tag']['tagged'] and 'awaiting a GPU runner' in c['$runtime_tag']['reason']"
check "the registry holds no runtime tag" lacks_tag "$runtime_tag"
digest=$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print([x for x in j['combos'] if x['id']=='$devel_tag'][0]['digest'])" "$state/p2.json")
check "the verification record is attached to $digest" has_tag "sha256-${digest#sha256:}.kiln"
"$kiln" promote matrices/offline.toml --only "$devel_tag" --state-dir "$state" --format json >"$state/p3.json"
"$kiln" promote matrices/offline.toml --only "$devel_tag" --state-dir "$state" --dry-run >"$state/dry2.txt"
check "dry run of a tagged image: already tagged" grep -Eq "^$devel_tag +already tagged" "$state/dry2.txt"
check "dry run counts the existing tags" grep -q "0 of 1 would be tagged, 1 already tagged (1 of 1 tags exist)" "$state/dry2.txt"
check "promoting again changes nothing" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); t=j['combos'][0]['tags'][0]; sys.exit(0 if j['combos'][0]['tagged'] and t['action'] in ('unchanged','pushed') else 1)" "$state/p3.json"

# --- audit from the registry: the promoted devel image, read over the
# distribution API (layers streamed, gzip as pushed), agrees with its plan
# and with the engine's copy of the same image -------------------------------
"$kiln" audit "docker://$reg/$repo:$devel_tag" --gpu T4 --gpu H100 --format json >"$state/audit-reg.json"
check "registry audit exit 0" test $? -eq 0
"$kiln" audit "docker-daemon:kiln.local/offline:$devel_tag" --gpu T4 --gpu H100 --format json >"$state/audit-eng.json"
check "registry audit agrees with the plan and the engine's copy" python3 -c "
import json, sys
plan = [c for c in json.load(open(sys.argv[1]))['combos'] if c['id'] == '$devel_tag'][0]
reg, eng = (json.load(open(p))['images'][0] for p in sys.argv[2:4])
ok = reg['source'].startswith('registry ') and reg['min_driver'] == plan['min_driver']
ok &= all(reg['gpus'][g]['core_support'] == plan['targets'][g]['support'] and all('nvprof' in l for l in reg['gpus'][g]['partial_libraries']) for g in ('T4', 'H100'))  # the devel image's nvprof: sm_52 only (partial)
ok &= reg['cuda_runtime']['release'] == '12.4'
ok &= [(l['path'], l.get('sass'), l.get('ptx')) for l in reg['libraries']] == [(l['path'], l.get('sass'), l.get('ptx')) for l in eng['libraries']]
ok &= len(reg['libraries']) > 0
sys.exit(0 if ok else 1)" "$state/plan.json" "$state/audit-reg.json" "$state/audit-eng.json"

echo "offline: $passed passed, $failed failed"
((failed == 0))
