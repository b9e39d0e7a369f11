#!/usr/bin/env bash
# `kiln audit` and `kiln check-driver` end to end: exit codes 0/1/2 and the
# answers, on an image made from nvcc-built libraries (tests/audit fixtures).
# Usage: test_audit_cli.sh PATH/TO/kiln FIXTURE_DIR
set -uo pipefail
kiln=$1 fixtures=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
json_assert() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"; }

# --- bad input: exit 2, the file named, never a crash -----------------------
printf 'not a tar' >"$tmp/broken.tar"
"$kiln" audit "$tmp/broken.tar" 2>"$tmp/err.txt"
check "broken archive exit 2" test $? -eq 2
check "broken archive named" grep -q "broken.tar" "$tmp/err.txt"
"$kiln" audit "$tmp/missing.tar" 2>"$tmp/err.txt"
check "missing archive exit 2" test $? -eq 2
check "missing archive named" grep -q "missing.tar: error: no such file" "$tmp/err.txt"
"$kiln" check-driver --driver banana "$tmp/broken.tar" 2>/dev/null
check "bad --driver exit 2" test $? -eq 2
"$kiln" check-driver --driver 580.95.05 "$tmp/broken.tar" 2>/dev/null
check "check-driver on a broken archive exit 2" test $? -eq 2

# --- check-driver on a matrix (plan with a query) ---------------------------
"$kiln" check-driver --driver 999.0 --gpu T4 matrices/offline.toml >"$tmp/m.txt"
check "matrix on a new driver exit 0" test $? -eq 0
"$kiln" check-driver --driver 470.82.01 matrices/offline.toml >"$tmp/m.txt"
check "matrix on an old driver exit 1" test $? -eq 1
check "matrix failure says why" grep -q "is too old" "$tmp/m.txt"

if [ ! -f "$fixtures/libk_sass.so" ] || [ ! -f /usr/local/cuda/lib64/libcudart.so.13 ]; then
  echo "no nvcc fixtures or CUDA 13 runtime: image cases skipped"
else
  python3 scripts/make-audit-image.py "$tmp/img.tar" \
    --layer usr/local/cuda-13.0/lib64/libcudart.so.13=/usr/local/cuda/lib64/libcudart.so.13 \
    --layer opt/app/lib/libapp_cuda.so="$fixtures/libk_sass.so" \
    --layer opt/app/lib/libapp_cuda_ptx80.so="$fixtures/libk_ptx80.so" \
    --text 'usr/local/cuda-13.0/version.json={"cuda":{"version":"13.0.2"},"cuda_cudart":{"version":"13.0.96"}}' \
    --text 'usr/lib/x86_64-linux-gnu/libcuda.so.1=shadowing driver' --env CUDA_VERSION=13.0.2 2>/dev/null
  "$kiln" audit "$tmp/img.tar" --format json >"$tmp/a.json"
  check "audit exit 0" test $? -eq 0
  check "schema" json_assert "$tmp/a.json" "j['schema']=='kiln.audit/v2'"
  i="j['images'][0]"
  check "grid" json_assert "$tmp/a.json" "{k:v['support'] for k,v in $i['gpus'].items()}=={'P100':'unsupported','V100':'unsupported','T4':'unsupported','A100':'ptx-jit','L4':'ptx-jit','H100':'ptx-jit','B200':'ptx-jit'}"
  check "min driver from PTX ISA 9.0" json_assert "$tmp/a.json" "$i['min_driver']=='580.95.05'"
  check "driver library warning" json_assert "$tmp/a.json" "any('shadows the host' in w for w in $i['warnings'])"
  "$kiln" audit "$tmp/img.tar" --gpu H100 --format md >"$tmp/a.md"
  check "markdown" grep -q "| H100 (sm_90) | 9.0 | ptx-jit |" "$tmp/a.md"
  "$kiln" audit "$tmp/img.tar" "$tmp/broken.tar" >/dev/null 2>&1
  check "one bad image among good ones exit 2" test $? -eq 2

  "$kiln" check-driver --driver 580.95.05 --gpu H100 --gpu A100 "$tmp/img.tar" >"$tmp/c.txt"
  check "check-driver ok exit 0" test $? -eq 0
  "$kiln" check-driver --driver 580.65.06 --gpu H100 "$tmp/img.tar" >"$tmp/c.txt"
  check "PTX JIT needs the toolkit's driver: exit 1" test $? -eq 1
  check "says the JIT floor" grep -q "runs only through PTX" "$tmp/c.txt"
  "$kiln" check-driver --driver 590.0 --gpu T4 --format json "$tmp/img.tar" >"$tmp/c.json"
  check "unsupported GPU exit 1" test $? -eq 1
  check "names the library" json_assert "$tmp/c.json" "'libapp_cuda_ptx80.so' in j['images'][0]['reason']"

  # A changed byte inside a library's body (a part the walk seeks over): the
  # layer digest catches it; --no-verify-digests trusts it, and says so.
  python3 - "$tmp/img.tar" "$tmp/changed.tar" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
at = data.find(b"\x7fELF", data.find(b"libapp_cuda.so")) + 200  # inside the ELF header's padding area
data[at] ^= 0xFF
open(sys.argv[2], "wb").write(data)
PY
  # --no-cache: the layer's digest is one kiln has cached (img.tar above),
  # and a cache hit answers for that digest without reading the bytes.
  "$kiln" audit --no-cache "$tmp/changed.tar" 2>"$tmp/err.txt" >/dev/null
  check "changed layer exit 2" test $? -eq 2
  check "changed layer: digest mismatch" grep -q "digest mismatch" "$tmp/err.txt"
  "$kiln" audit --no-verify-digests "$tmp/changed.tar" --format json >"$tmp/t.json"
  check "--no-verify-digests reads it" test $? -eq 0
  check "--no-verify-digests says so" json_assert "$tmp/t.json" "any('layer digests not checked' in w for w in j['images'][0]['warnings'])"
  "$kiln" check-driver --no-verify-digests --driver 580.95.05 --gpu H100 "$tmp/img.tar" >/dev/null
  check "check-driver --no-verify-digests exit 0" test $? -eq 0
fi

# --- fail closed: a library whose fat binary cannot be read ------
# An nvcc-built library with its .nv_fatbin container size made to overrun
# the section: "unknown" on every GPU, never native; check-driver exits 1
# (the image was read; it cannot be shown to run) naming the library.
if [ -f "$fixtures/libk_sass.so" ]; then
  python3 - "$fixtures/libk_sass.so" "$tmp/libcorrupt.so" <<'PY'
import struct, sys
elf = bytearray(open(sys.argv[1], "rb").read())
shoff, = struct.unpack_from("<Q", elf, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
def shdr(i):
    return struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize)
names = shdr(shstrndx)[4]
for i in range(shnum):
    h = shdr(i)
    name = elf[names + h[0]:elf.index(b"\0", names + h[0])]
    if name == b".nv_fatbin":
        struct.pack_into("<Q", elf, h[4] + 8, 0x7FFFFFFFFFFF)  # container size past the section
        break
else:
    sys.exit("no .nv_fatbin")
open(sys.argv[2], "wb").write(elf)
PY
  python3 scripts/make-audit-image.py "$tmp/corrupt.tar" --layer opt/app/lib/libapp_cuda.so="$tmp/libcorrupt.so" 2>/dev/null
  "$kiln" check-driver --driver 390.0 --gpu P100 "$tmp/corrupt.tar" >"$tmp/cd.txt"
  check "unreadable fat binary: check-driver exit 1" test $? -eq 1
  check "unreadable fat binary: names the library and why" \
    grep -q "P100 (sm_60) unknown: opt/app/lib/libapp_cuda.so: fat binary unreadable: section .nv_fatbin: fat-binary container size" "$tmp/cd.txt"
  "$kiln" check-driver --driver 999.0 --format json "$tmp/corrupt.tar" >"$tmp/cd.json"
  check "unreadable fat binary, no --gpu: exit 1" test $? -eq 1
  check "unreadable fat binary, no --gpu: says the floor is unknown" json_assert "$tmp/cd.json" \
    "'minimum driver unknown: opt/app/lib/libapp_cuda.so: fat binary unreadable' in j['images'][0]['reason']"
  "$kiln" audit --format json "$tmp/corrupt.tar" >"$tmp/u.json"
  check "unreadable fat binary: audit exit 0 (it reports)" test $? -eq 0
  check "unreadable fat binary: unknown on every GPU" json_assert "$tmp/u.json" \
    "all(g['support']=='unknown' and g['unknown_libraries']==['opt/app/lib/libapp_cuda.so'] for g in j['images'][0]['gpus'].values())"
  check "unreadable fat binary: library error and no min driver" json_assert "$tmp/u.json" \
    "j['images'][0]['libraries'][0]['error'] and j['images'][0]['min_driver'] is None"
  "$kiln" audit "$tmp/corrupt.tar" >"$tmp/u.txt"
  check "unreadable fat binary: table says unknown" grep -qE "P100 .* unknown .*fat binary unreadable" "$tmp/u.txt"
  "$kiln" audit --format md "$tmp/corrupt.tar" >"$tmp/u.md"
  check "unreadable fat binary: markdown says unknown" grep -q "| P100 (sm_60) | 6.0 | unknown |" "$tmp/u.md"
fi

echo "audit cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
