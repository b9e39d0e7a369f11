#!/usr/bin/env bash
# GPU proof of the smoke suite (kernels/), for a GPU host such as the H100
# test host (CUDA 13.0 under /usr/local/cuda, cuDNN/NCCL as pip wheels, PyTorch
# with LibTorch in the python3 on PATH). One call does everything:
#   builds kiln-smoke three ways and kiln-smoke-torch, then runs
#   (a) full suite, sm_90 SASS+PTX                -> every section passes (exit 0)
#   (b) sm_75 SASS only, no PTX                   -> arch fails: no kernel image (exit 1)
#   (c) compute_75 PTX only                       -> passes, arch reports PTX JIT (exit 0)
#   (d) (a) with a wrong expected cuDNN version   -> env fails naming both (exit 1)
#   (t) kiln-smoke-torch and smoke_torch.py (torch.matmul bf16 at the same size)
# and prints a table. JSON of every run, the table and one log go to $OUT
# (default build/gpu-smoke-out, git-ignored), named <date>-<gpu>-smoke-<case>.json.
#
# usage: scripts/gpu-smoke.sh [build-root]     (exit 0 when (a)-(d) behaved as expected)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-/tmp/kiln-gpu-smoke}
OUT=${OUT:-$ROOT/build/gpu-smoke-out}
PY=${PYTHON:-python3}
JOBS=$(nproc)
mkdir -p "$OUT" "$BUILD"
LOG=$OUT/gpu-smoke.log
: >"$LOG"
# NVLink multicast is never needed here and can wedge shared GPUs.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

elapsed() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN{printf "%.2f", a-b}'; }
log() { echo "[gpu-smoke] $*" | tee -a "$LOG" >&2; }

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  log "no NVIDIA GPU here: nothing to prove (exit 3)"
  exit 3
fi
T_START=$(date +%s.%N)
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
GPU_SLUG=$(echo "$GPU_NAME" | sed -E 's/^NVIDIA //; s/[^A-Za-z0-9.]+/-/g; s/-+$//')
DATE=$(date -u +%Y-%m-%d)
PREFIX="$OUT/$DATE-$GPU_SLUG-smoke"
log "GPU: $GPU_NAME; driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"

# ---- where the libraries are (pip wheels next to torch) ----------------------
SITE=$($PY -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
CUDNN_ROOT=${CUDNN_ROOT:-$SITE/nvidia/cudnn}
NCCL_ROOT=${NCCL_ROOT:-$SITE/nvidia/nccl}
export LD_LIBRARY_PATH="$CUDNN_ROOT/lib:$NCCL_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
read -r EXP_CUDA EXP_CUDNN EXP_NCCL WRONG_CUDNN TORCH_PREFIX < <($PY - <<'PY'
import torch
v = torch.backends.cudnn.version()
cudnn = f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
major, minor, patch = (int(x) for x in cudnn.split("."))
nccl = ".".join(str(x) for x in torch.cuda.nccl.version())
print(torch.version.cuda, cudnn, nccl, f"{major}.{minor + 1}.{patch}", torch.utils.cmake_prefix_path)
PY
)
log "expected: CUDA $EXP_CUDA, cuDNN $EXP_CUDNN, NCCL $EXP_NCCL (wrong cuDNN for (d): $WRONG_CUDNN)"
log "cuDNN root $CUDNN_ROOT; NCCL root $NCCL_ROOT; LibTorch $TORCH_PREFIX"
{ echo "cmake: $(cmake --version | head -1); nvcc: $(/usr/local/cuda/bin/nvcc --version | tail -1)"
  ls "$SITE/nvidia" "$CUDNN_ROOT" "$NCCL_ROOT"; ls /usr/local/cuda/lib64 | grep -E 'cublas|cudnn|nccl'; } >>"$LOG" 2>&1
export TORCH_CUDA_ARCH_LIST="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1)"

# ---- builds (in parallel: each is a few files) ----------------------------------
configure_build() {  # name arch [extra cmake args...]
  local name=$1 arch=$2
  shift 2
  local dir=$BUILD/$name
  {
    cmake -S "$ROOT/kernels" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES="$arch" \
      -DCUDNN_ROOT="$CUDNN_ROOT" -DNCCL_ROOT="$NCCL_ROOT" -DKILN_SMOKE_TESTS=OFF "$@" &&
      cmake --build "$dir" -j "$JOBS"
  } >"$BUILD/$name.log" 2>&1
}
T_BUILD=$(date +%s.%N)
configure_build sm90 "90" & P_A=$!
configure_build sm75sass "75-real" & P_B=$!
configure_build ptx75 "75-virtual" & P_C=$!
configure_build torch "90" -DKILN_SMOKE_WITH_TORCH=ON -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" & P_T=$!
BUILD_OK=1
for p in "$P_A:sm90" "$P_B:sm75sass" "$P_C:ptx75" "$P_T:torch"; do
  if ! wait "${p%%:*}"; then
    log "build ${p#*:} FAILED (tail of its log):"
    tail -40 "$BUILD/${p#*:}.log" | tee -a "$LOG" >&2
    [ "${p#*:}" = torch ] || BUILD_OK=0
  fi
  cat "$BUILD/${p#*:}.log" >>"$LOG"
done
log "builds took $(elapsed "$T_BUILD") s"
[ "$BUILD_OK" = 1 ] || { log "kiln-smoke did not build"; exit 1; }

# ---- runs -----------------------------------------------------------------------
declare -A RC WALL
run_case() {  # case binary args...
  local c=$1 bin=$2
  shift 2
  local t0=$(date +%s.%N)
  "$bin" "$@" >"$PREFIX-$c.json" 2>>"$LOG"
  RC[$c]=$?
  WALL[$c]=$(elapsed "$t0")
  log "case $c: exit ${RC[$c]} in ${WALL[$c]} s"
}
EXPECT=(--expect-cuda "$EXP_CUDA" --expect-cudnn "$EXP_CUDNN" --expect-nccl "$EXP_NCCL")
run_case a-sm90 "$BUILD/sm90/kiln-smoke" "${EXPECT[@]}"
run_case b-sm75-sass "$BUILD/sm75sass/kiln-smoke" "${EXPECT[@]}"
run_case c-compute75-ptx "$BUILD/ptx75/kiln-smoke" "${EXPECT[@]}"
run_case d-wrong-cudnn "$BUILD/sm90/kiln-smoke" --expect-cuda "$EXP_CUDA" --expect-cudnn "$WRONG_CUDNN" \
  --expect-nccl "$EXP_NCCL" --only env,arch,cudnn
GEMM_N=$($PY -c 'import json,sys;print(json.load(open(sys.argv[1]))["sections"]["cublas"]["data"].get("perf_size",8192))' "$PREFIX-a-sm90.json" 2>/dev/null || echo 8192)
if [ -x "$BUILD/torch/kiln-smoke-torch" ]; then
  run_case torch-cpp "$BUILD/torch/kiln-smoke-torch" --expect-cuda "$EXP_CUDA" --expect-cudnn "$EXP_CUDNN"
else
  RC[torch-cpp]=none
fi
run_case torch-py "$PY" "$ROOT/kernels/torch/smoke_torch.py" --expect-cuda "$EXP_CUDA" --expect-cudnn "$EXP_CUDNN" \
  --gemm-size "$GEMM_N"

# ---- table ------------------------------------------------------------------------
TOTAL=$(elapsed "$T_START")
$PY "$ROOT/kernels/tools/gpu_smoke_table.py" "$PREFIX" "$GPU_NAME" "$TOTAL" \
  "a-sm90=${RC[a-sm90]}:${WALL[a-sm90]}" "b-sm75-sass=${RC[b-sm75-sass]}:${WALL[b-sm75-sass]}" \
  "c-compute75-ptx=${RC[c-compute75-ptx]}:${WALL[c-compute75-ptx]}" \
  "d-wrong-cudnn=${RC[d-wrong-cudnn]}:${WALL[d-wrong-cudnn]}" \
  "torch-cpp=${RC[torch-cpp]}:${WALL[torch-cpp]:-0}" "torch-py=${RC[torch-py]}:${WALL[torch-py]}" \
  | tee "$OUT/$DATE-$GPU_SLUG-smoke-table.txt"
exit "${PIPESTATUS[0]}"
