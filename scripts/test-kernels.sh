#!/usr/bin/env bash
# Builds the smoke suite (kernels/) against /usr/local/cuda, runs its unit
# tests, and checks the CPU-host contract of kiln-smoke on this GPU-less
# machine: exit 3, JSON saying no usable GPU, nothing reported as pass.
#
# usage: scripts/test-kernels.sh [build-dir]   (default build/kernels)
# Skips (exit 0 with a note) only when no nvcc is installed at all.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build/kernels}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
NVCC=$CUDA_HOME/bin/nvcc
# Two archs keep the build short on small CI machines while still producing
# both an older-arch and a Hopper image.
ARCHS=${KILN_TEST_CUDA_ARCHS:-75;90}

if [ ! -x "$NVCC" ]; then
  echo "test-kernels: no nvcc at $NVCC; kernels/ not built (skipped)"
  exit 0
fi
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

echo "== configure + build kernels/ ($ARCHS) in $BUILD"
cmake -S "$ROOT/kernels" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" >"$BUILD.configure.log" 2>&1 ||
  { cat "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)"

echo "== unit tests"
if [ -x "$BUILD/kiln-smoke-tests" ]; then
  "$BUILD/kiln-smoke-tests"
else
  echo "test-kernels: kiln-smoke-tests not built (Catch2 missing)"
  exit 1
fi

echo "== usage errors exit 2"
set +e
"$BUILD/kiln-smoke" --only nosuchsection >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || { echo "FAIL: bad --only gave exit $rc, want 2"; exit 1; }

echo "== CPU-host contract"
if [ -e /dev/nvidiactl ] || ls /dev/nvidia0 >/dev/null 2>&1; then
  echo "test-kernels: a GPU device node exists here; the no-GPU contract is not checked"
  exit 0
fi
JSON=$BUILD/no-gpu.json
set +e
"$BUILD/kiln-smoke" --expect-cuda 13.0 >"$JSON"
rc=$?
set -e
echo "kiln-smoke exit $rc"
python3 - "$JSON" "$rc" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rc = int(sys.argv[2])
problems = []
if rc != 3:
    problems.append(f"exit {rc}, want 3")
for key in ("schema", "tool", "verdict", "exit_code", "gpu", "build", "expected", "sections", "summary", "wall_s"):
    if key not in doc:
        problems.append(f"missing key {key}")
if doc.get("schema") != "kiln-smoke/1":
    problems.append(f"schema {doc.get('schema')}")
if doc.get("gpu", {}).get("usable") is not False:
    problems.append("gpu.usable is not false")
if not doc.get("gpu", {}).get("error"):
    problems.append("gpu.error does not say why")
if doc.get("verdict") != "no-gpu" or doc.get("exit_code") != 3:
    problems.append(f"verdict {doc.get('verdict')} exit_code {doc.get('exit_code')}")
names = ["env", "arch", "memory", "cublas", "cudnn", "nccl"]
for n in names:
    s = doc.get("sections", {}).get(n)
    if s is None:
        problems.append(f"section {n} missing")
        continue
    for key in ("status", "required", "duration_s", "errors", "notes", "data"):
        if key not in s:
            problems.append(f"section {n} lacks {key}")
    if s.get("status") == "pass":
        problems.append(f"section {n} reported pass without a GPU")
    if s.get("status") not in ("skipped", "absent"):
        problems.append(f"section {n} status {s.get('status')}")
if doc.get("summary", {}).get("pass"):
    problems.append(f"summary.pass not empty: {doc['summary']['pass']}")
env = doc.get("sections", {}).get("env", {}).get("data", {})
if not env.get("runtime_version"):
    problems.append("env does not report the runtime version")
if problems:
    print("FAIL: " + "; ".join(problems))
    sys.exit(1)
print("CPU-host contract holds: exit 3, gpu.usable false, nothing passed "
      f"(runtime {env['runtime_version']}, {doc['gpu']['error']})")
PY
echo "test-kernels: 1 passed, 0 failed"
