#!/usr/bin/env bash
# smoke_torch.py on a CPU-only torch image (Debian 12's python3-torch 1.13 on
# kiln's offline Debian base), in a container set up as kiln's gpu check sets
# it up (no network, read-only root, /tmp tmpfs, a given /dev/shm): no GPU
# must be exit 3 and verdict no-gpu, never a pass; a CPU-only torch against an
# expected CUDA is exit 1; a /dev/shm too small for the DataLoader fails shm
# with what happened.
set -uo pipefail
passed=0 failed=0
check() { local n=$1; shift; if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $n"; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sock=$(scripts/start-engine.sh) || { echo "torch-cpu: no engine"; echo "0 passed, 1 failed"; exit 1; }
export DOCKER_HOST=unix://$sock
scripts/make-bases.sh 12 >"$tmp/bases.log" 2>&1 || { tail -20 "$tmp/bases.log"; echo "0 passed, 1 failed"; exit 1; }
img=kiln-test/debian-torch:12
# Host network for apt, as kiln's own builds use: in CI runs docker0 was
# gone once the engine tests' private dockerd (--bridge=none) had started,
# and a bridge build failed with "could not find bridge docker0".
docker build --network host -q -t "$img" -f tests/verify/torch-cpu.Dockerfile tests/verify >"$tmp/build.log" 2>&1 \
  || { tail -20 "$tmp/build.log"; echo "0 passed, 1 failed"; exit 1; }

smoke() {  # smoke SHM ARGS... -> JSON in $tmp/out.json, exit code in $rc
  local shm=$1; shift
  docker run --rm --network none --read-only --tmpfs /tmp:rw,size=256m --shm-size "$shm" \
    -v "$PWD/kernels/torch:/opt/kiln-smoke:ro" "$img" python3 /opt/kiln-smoke/smoke_torch.py --compact "$@" \
    >"$tmp/out.json" 2>"$tmp/err.txt"
  rc=$?
}
doc() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); s=j['sections']; sys.exit(0 if ($1) else 1)" "$tmp/out.json"; }

smoke 1g --expect-torch 1.13
check "no GPU: exit 3 (got $rc)" test "$rc" -eq 3
check "no GPU: verdict no-gpu, nothing passes" doc "j['verdict']=='no-gpu' and j['summary']['pass']==[] and j['gpu']['usable'] is False"
check "all six sections reported, ddp and shm included" doc "sorted(s)==['amp','conv2d','ddp','env','matmul','shm']"
check "ddp is skipped without a GPU, saying why" doc "s['ddp']['status']=='skipped' and any('no usable GPU' in n for n in s['ddp']['notes'])"
check "shm ran its DataLoader through /dev/shm anyway (skipped, not pass)" \
  doc "s['shm']['status']=='skipped' and s['shm']['data']['dataloader']['batches']==24 and s['shm']['data']['size_bytes']==1<<30"
check "env read torch 1.13 (Debian's 1.13.0a0 matches --expect-torch 1.13)" doc "s['env']['data']['torch_version'].startswith('1.13') and s['env']['errors']==[]"

smoke 1g --expect-torch 1.13 --expect-cuda 13.0 --expect-cudnn 9.19.0.56 --expect-nccl 2.28.9
check "CPU-only torch against an expected CUDA: exit 1 (got $rc)" test "$rc" -eq 1
check "names the mismatch" doc "'CUDA version mismatch: expected 13.0, loaded None' in s['env']['errors'] and j['verdict']=='fail'"

smoke 1g --expect-torch 2.11
check "another torch: exit 1 (got $rc)" test "$rc" -eq 1
check "names both torch versions" doc "any('expected 2.11, loaded 1.13' in e for e in s['env']['errors'])"

smoke 8m --expect-torch 1.13
check "8 MiB /dev/shm: the DataLoader really fails, exit 1 (got $rc)" test "$rc" -eq 1
check "shm fails with what happened and the rule's numbers" \
  doc "s['shm']['status']=='fail' and 'DataLoader with 2 workers failed' in s['shm']['errors'][0] and s['shm']['data']['too_small'] and 'No space left' in s['shm']['data']['probe']['error']"

smoke 1g --only nonsense
check "bad usage: exit 2 (got $rc)" test "$rc" -eq 2

echo "torch-cpu: $passed passed, $failed failed"
((failed == 0))
