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
check "built" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); s=j['stages'][0]; sys.exit(0 if s['outcome'] in ('built','cached') and s['image_id'].startswith('sha256:') else 1)" "$state/b1.json"

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

echo "offline: $passed passed, $failed failed"
((failed == 0))
