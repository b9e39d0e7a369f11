#!/usr/bin/env bash
# kiln audit of a multi-GB image vs. the manual way: extract the image and
# run cuobjdump on every CUDA ELF. Prints both times, the ratio (goal ≥ 10×)
# and kiln's peak memory (goal < 200 MB). Needs cuobjdump (the GPU host has
# it); without it only kiln is timed (runs anywhere: torch and the GPU are
# optional). KILN_BASELINE=OLD_KILN also times an older build on the same image.
#   bench/audit.sh [KILN] [RESULTS_DIR]
# The image is a docker-save tar of /usr/local/cuda/lib64 (cuBLAS, cuDNN,
# NCCL ...) plus PyTorch's lib/ when a torch is importable, written by
# scripts/make-audit-image.py. BENCH_WORK picks the scratch dir.
# The audit layer cache (docs/audit.md): the cold runs use --no-cache; then
# a fresh cache is filled by one audit and a second image that shares every
# layer but a small last one is audited with it (layers read, time, ratio).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
kiln=${1:-$here/build/src/cli/kiln}
results=${2:-$here/bench/results}
work=${BENCH_WORK:-$(mktemp -d)}
cuobjdump=${CUOBJDUMP:-$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)}
mkdir -p "$results" "$work"
cuda_lib=$(readlink -f /usr/local/cuda/lib64)
torch_lib=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))' 2>/dev/null || true)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '-' || true)
stamp="$(date +%Y-%m-%d)-${gpu:-nogpu}"

layers=(--layer "usr/local/cuda-13.0/lib64=$cuda_lib")
[ -n "$torch_lib" ] && [ -d "$torch_lib" ] && layers+=(--layer "opt/venv/lib/python3.12/site-packages/torch/lib=$torch_lib")
python3 "$here/scripts/make-audit-image.py" "$work/bench.tar" "${layers[@]}" \
  --text 'usr/local/cuda-13.0/version.json={"cuda":{"version":"13.0.2"}}' --env CUDA_VERSION=13.0.2
size=$(du -b "$work/bench.tar" | cut -f1)
# The same image with another small last layer: shares its base with bench.tar.
python3 "$here/scripts/make-audit-image.py" "$work/bench2.tar" "${layers[@]}" \
  --text 'usr/local/cuda-13.0/version.json={"cuda":{"version":"13.0.2"}}' --text 'etc/bench-marker=second image' \
  --env CUDA_VERSION=13.0.2

# Wall time and peak RSS of a command, via the kernel's rusage of the child.
measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
dt = time.perf_counter() - t
print(f"{dt:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} {rc}")
PY
}

cat /dev/null "$work/bench.tar" >/dev/null  # same page-cache state for both
read -r kiln_s kiln_mb kiln_rc < <(measure "$kiln" --data-dir "$here" audit --no-cache "$work/bench.tar")
# The same without hashing the layers (what the peer checks: nothing).
read -r trust_s trust_mb trust_rc < <(measure "$kiln" --data-dir "$here" audit --no-cache --no-verify-digests "$work/bench.tar")
# The layer cache: a first audit fills a fresh cache, a second image sharing
# the base reads only its new layer. Layers read come from the JSON.
layers_read() { python3 -c 'import json,sys; i=json.load(sys.stdin)["images"][0]; print(str(i["layers_read"]) + "/" + str(i["layers"]))'; }
rm -rf "$work/cache"
read -r fill_s fill_mb _ < <(measure "$kiln" --data-dir "$here" audit --cache-dir "$work/cache" "$work/bench.tar")
read -r shared_s shared_mb _ < <(measure "$kiln" --data-dir "$here" audit --cache-dir "$work/cache" "$work/bench2.tar")
fill_read=$(rm -rf "$work/cache2"; "$kiln" --data-dir "$here" audit --cache-dir "$work/cache2" "$work/bench.tar" --format json | layers_read)
shared_read=$("$kiln" --data-dir "$here" audit --cache-dir "$work/cache2" "$work/bench2.tar" --format json | layers_read)
cache_mb=$(du -sm "$work/cache" | cut -f1)
# KILN_BASELINE=/path/to/older/kiln: time it on the same image (before/after).
if [ -n "${KILN_BASELINE:-}" ]; then
  read -r base_s base_mb base_rc < <(measure "$KILN_BASELINE" --data-dir "$here" audit "$work/bench.tar")
  read -r kiln2_s kiln2_mb _ < <(measure "$kiln" --data-dir "$here" audit --no-cache "$work/bench.tar")
fi
"$kiln" --data-dir "$here" audit --no-cache "$work/bench.tar" --format json >"$work/kiln-audit.json"

peer() {  # extract every layer, then list the device code of each CUDA ELF
  rm -rf "$work/x" && mkdir -p "$work/x/rootfs"
  tar -xf "$work/bench.tar" -C "$work/x"
  python3 -c 'import json,sys;[print(l) for l in json.load(open(sys.argv[1]))[0]["Layers"]]' "$work/x/manifest.json" |
    while read -r l; do tar -xf "$work/x/$l" -C "$work/x/rootfs"; done
  mkdir -p "$work/listings" && : >"$work/listings/ALL"
  # Every ELF file, as kiln reads them (by magic, not by name).
  find "$work/x/rootfs" -type f | sort | while read -r f; do
    [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    rel=${f#"$work/x/rootfs/"}
    echo "$rel" >>"$work/listings/ALL"  # gpu-audit-check.sh --from: every ELF given to cuobjdump
    "$cuobjdump" --list-elf "$f" >"$work/listings/${rel//\//_}.elf" 2>/dev/null || true
    "$cuobjdump" --list-ptx "$f" >"$work/listings/${rel//\//_}.ptx" 2>/dev/null || true
  done
}
export -f peer; export work cuobjdump
out="$results/audit-$stamp.txt"
{
  echo "image: $work/bench.tar, $((size / 1000000)) MB; kiln $("$kiln" --version)"
  echo "kiln audit: ${kiln_s} s, peak ${kiln_mb} MB (exit $kiln_rc)"
  echo "kiln audit --no-verify-digests: ${trust_s} s, peak ${trust_mb} MB (exit $trust_rc)"
  echo "layer cache: first audit (fills it) ${fill_s} s, peak ${fill_mb} MB, layers read ${fill_read}; second image sharing the base: ${shared_s} s, peak ${shared_mb} MB, layers read ${shared_read}; cache ${cache_mb} MB"
  python3 -c "import sys; print(f'second audit vs first: {float(sys.argv[1]) / max(float(sys.argv[2]), 0.01):.1f}x faster')" "$fill_s" "$shared_s"
  [ -n "${KILN_BASELINE:-}" ] && echo "baseline $KILN_BASELINE: ${base_s} s, peak ${base_mb} MB (exit $base_rc); kiln again: ${kiln2_s} s, peak ${kiln2_mb} MB"
  if [ -x "$cuobjdump" ]; then
    read -r peer_s _ _ < <(measure bash -c peer)
    echo "extract + cuobjdump --list-elf/--list-ptx: ${peer_s} s"
    python3 -c "import sys; print(f'ratio: {float(sys.argv[1]) / float(sys.argv[2]):.1f}x (goal >= 10x); peak {sys.argv[3]} MB (goal < 200 MB)')" "$peer_s" "$kiln_s" "$kiln_mb"
    python3 -c "import sys; print(f'ratio without layer hashing: {float(sys.argv[1]) / float(sys.argv[2]):.1f}x')" "$peer_s" "$trust_s"
  else
    echo "no cuobjdump here: peer not run"
  fi
} | tee "$out"
if [ -d "$work/listings" ]; then
  bash "$here/scripts/gpu-audit-check.sh" --from "$work/kiln-audit.json" "$work/listings" | tee "$results/gpu-audit-check-$stamp.txt"
fi
[ -z "${BENCH_WORK:-}" ] && rm -rf "$work"
exit 0
