#!/usr/bin/env bash
# Do kiln's fat-binary SASS/PTX lists equal cuobjdump's? Run on the GPU host
# (cuobjdump lives there). Prints every mismatch; exit 1 if there is one.
#   scripts/gpu-audit-check.sh KILN [RESULTS_DIR]     # /usr/local/cuda/lib64 + torch's libtorch_cuda.so
#   scripts/gpu-audit-check.sh --from AUDIT.json LISTINGS_DIR   # what bench/audit.sh made
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" != "--from" ]; then
  kiln=${1:?usage: gpu-audit-check.sh KILN [RESULTS_DIR]}
  results=${2:-$here/bench/results}
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  cuobjdump=${CUOBJDUMP:-$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)}
  torch_cuda=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib","libtorch_cuda.so"))' 2>/dev/null || true)
  cuda_lib=$(readlink -f /usr/local/cuda/lib64)
  layers=(--layer "usr/local/cuda-13.0/lib64=$cuda_lib")
  [ -f "$torch_cuda" ] && layers+=(--layer "torch/lib/libtorch_cuda.so=$torch_cuda")
  python3 "$here/scripts/make-audit-image.py" "$work/img.tar" "${layers[@]}" 2>/dev/null
  "$kiln" --data-dir "$here" audit "$work/img.tar" --format json >"$work/audit.json"
  mkdir -p "$work/listings"
  for f in "$cuda_lib"/lib*.so* "$torch_cuda"; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    case $f in "$torch_cuda") rel=torch/lib/libtorch_cuda.so ;; *) rel=usr/local/cuda-13.0/lib64/$(basename "$f") ;; esac
    "$cuobjdump" --list-elf "$f" >"$work/listings/${rel//\//_}.elf" 2>/dev/null || true
    "$cuobjdump" --list-ptx "$f" >"$work/listings/${rel//\//_}.ptx" 2>/dev/null || true
  done
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '-' || true)
  mkdir -p "$results"
  exec > >(tee "$results/gpu-audit-check-$(date +%Y-%m-%d)-${gpu:-nogpu}.txt")
  set -- --from "$work/audit.json" "$work/listings"
fi
python3 - "$2" "$3" <<'PY'
import json, os, re, sys
audit, listings = json.load(open(sys.argv[1])), sys.argv[2]
# cuobjdump names entries "<file>.<n>.sm_90a.cubin" / "<file>.<n>.sm_90.ptx".
arch = re.compile(r"\.(sm_\d+[af]?)\.(cubin|ptx)\s*$")
def listed(path, kind):
    try:
        lines = open(os.path.join(listings, path.replace("/", "_") + "." + kind)).read().splitlines()
    except FileNotFoundError:
        return None
    return sorted({m.group(1) for l in lines if (m := arch.search(l))})
# Known differences, not counted as mismatches (docs/audit.md):
# - cuobjdump 13.0 prints family-specific cubins (entry flag 0x200000, kiln's
#   "sm_120f") without the "f": 1,596 "sm_120" in libcublasLt = 463 + 1,133 f.
# - cuobjdump reads .nv_fatbin only (not __nv_relfatbin without -all, not
#   .ldata): kiln's "scan" libraries (libcufft, libnppc) list more; kiln's
#   ignored entries (relocatable, or unregistered like libcufftw's sm_75)
#   may be what cuobjdump shows.
def plain(names):
    return sorted({re.sub(r"^(sm_\d+)f$", r"\1", n) for n in names})
checked = mismatches = 0
for lib in audit["images"][0]["libraries"]:
    elf, ptx = listed(lib["path"], "elf"), listed(lib["path"], "ptx")
    if elf is None:
        continue
    checked += 1
    kiln_sass = plain(lib.get("sass", []))
    kiln_ptx = plain(p.replace("compute_", "sm_") for p in lib.get("ptx", []))
    ign_sass = plain(lib.get("sass", []) + lib.get("ignored_sass", []))
    ign_ptx = plain(p.replace("compute_", "sm_") for p in lib.get("ptx", []) + lib.get("ignored_ptx", []))
    if kiln_sass == sorted(elf) and kiln_ptx == sorted(ptx):
        print(f"same {lib['path']}: SASS {' '.join(elf) or '-'} | PTX {' '.join(ptx) or '-'}")
    for what, mine, with_ignored, theirs in (("SASS", kiln_sass, ign_sass, elf), ("PTX", kiln_ptx, ign_ptx, ptx)):
        if mine == sorted(theirs):
            continue
        if with_ignored == sorted(theirs):
            print(f"note {lib['path']} {what}: cuobjdump lists kiln's ignored entries too: {' '.join(theirs) or '-'}")
        elif lib.get("found_by") == "scan" and set(theirs) <= set(with_ignored):
            print(f"note {lib['path']} {what}: kiln scanned beyond .nv_fatbin: kiln {' '.join(mine) or '-'} | cuobjdump {' '.join(theirs) or '-'}")
        else:
            mismatches += 1
            print(f"MISMATCH {lib['path']} {what}: kiln {' '.join(mine) or '-'} | cuobjdump {' '.join(theirs) or '-'}")
print(f"{checked} libraries compared with cuobjdump, {mismatches} mismatches")
sys.exit(1 if mismatches else 0)
PY
