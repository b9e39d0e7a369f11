#!/usr/bin/env bash
# Do kiln's fat-binary SASS/PTX lists equal cuobjdump's? Run on the GPU host
# (cuobjdump lives there). Prints every mismatch; exit 1 if there is one.
#   scripts/gpu-audit-check.sh KILN [RESULTS_DIR]     # every ELF under /usr/local/cuda and torch's site-packages
#   scripts/gpu-audit-check.sh --from AUDIT.json LISTINGS_DIR   # what bench/audit.sh made
# Also counts the ELF files that cuobjdump lists device code for and kiln
# does not list at all (issue 14: kiln reads every ELF, chosen by magic).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" != "--from" ]; then
  kiln=${1:?usage: gpu-audit-check.sh KILN [RESULTS_DIR]}
  results=${2:-$here/bench/results}
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  cuobjdump=${CUOBJDUMP:-$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)}
  site=$(python3 -c 'import torch,os;print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null || true)
  cuda=$(readlink -f /usr/local/cuda)
  trees=("usr/local/cuda=$cuda")
  [ -n "$site" ] && [ -d "$site" ] && trees+=("opt/venv/site-packages=$site")
  layers=()
  for t in "${trees[@]}"; do layers+=(--layer "$t"); done
  python3 "$here/scripts/make-audit-image.py" "$work/img.tar" "${layers[@]}" 2>/dev/null
  "$kiln" --data-dir "$here" audit "$work/img.tar" --format json >"$work/audit.json"
  mkdir -p "$work/listings"
  for t in "${trees[@]}"; do
    dest=${t%%=*} src=${t#*=}
    find "$src" -type f | sort | while read -r f; do
      [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue  # every ELF, by magic
      rel=$dest/${f#"$src/"}
      "$cuobjdump" --list-elf "$f" >"$work/listings/${rel//\//_}.elf" 2>/dev/null || true
      "$cuobjdump" --list-ptx "$f" >"$work/listings/${rel//\//_}.ptx" 2>/dev/null || true
    done
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
    elf, ptx = listed(lib["path"], "elf"), listed(lib["path"], "ptx") or []
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
# ELF files cuobjdump lists device code for that kiln does not list at all.
listed_by_kiln = {lib["path"].replace("/", "_") for lib in audit["images"][0]["libraries"]}
missed = 0
for name in sorted(os.listdir(listings)):
    if not name.endswith(".elf"):
        continue
    base = name[:-len(".elf")]
    if base in listed_by_kiln:
        continue
    theirs = sorted(set(listed(base, "elf") or []) | set(listed(base, "ptx") or []))
    if theirs:
        missed += 1
        print(f"MISSED {base}: cuobjdump lists {' '.join(theirs)}, kiln lists nothing")
print(f"{checked} libraries compared with cuobjdump, {mismatches} mismatches, {missed} ELF files with device code kiln missed")
sys.exit(1 if mismatches or missed else 0)
PY
