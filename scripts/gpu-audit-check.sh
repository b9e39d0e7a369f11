#!/usr/bin/env bash
# Does kiln's audit find every piece of device code cuobjdump finds? Run on
# the GPU host (cuobjdump and a PyTorch venv live there). The image holds the
# whole site-packages of the python3 on PATH (nvidia/*, torch/lib, triton,
# every other package's extension modules) and the whole CUDA toolkit
# directory; cuobjdump is asked about EVERY regular ELF file in them (found by
# magic, whatever the name), and kiln must report each file cuobjdump lists
# device code for, with the same SASS/PTX sets. Prints every mismatch and a
# count of "listed by cuobjdump, missed by kiln"; exit 1 if any.
#   scripts/gpu-audit-check.sh KILN [RESULTS_DIR]
#   scripts/gpu-audit-check.sh --from AUDIT.json LISTINGS_DIR   # compare only (what bench/audit.sh made)
# The compare reads the audit JSON as kiln writes it: images[0].libraries
# (path, sass, ptx, ignored_sass, ignored_ptx, found_by: every ELF file with
# device code or an unreadable fat binary) and images[0].elf_files (how many
# ELF files kiln examined, with or without device code).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" != "--from" ]; then
  kiln=${1:?usage: gpu-audit-check.sh KILN [RESULTS_DIR]}
  results=${2:-$here/bench/results}
  work=${AUDIT_WORK:-$(mktemp -d)}; [ -n "${AUDIT_WORK:-}" ] || trap 'rm -rf "$work"' EXIT
  cuobjdump=${CUOBJDUMP:-$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)}
  site=$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
  cuda=$(readlink -f /usr/local/cuda)
  # In the image: site-packages where kiln's recipe puts it, CUDA where it is.
  img_site=opt/venv/lib/python3.12/site-packages img_cuda=${cuda#/}
  t=$(date +%s.%N)
  python3 "$here/scripts/make-audit-image.py" "$work/img.tar" --layer "$img_cuda=$cuda" --layer "$img_site=$site" 2>/dev/null
  echo "image: $(du -h "$work/img.tar" | cut -f1) ($site + $cuda) in $(python3 -c "import time;print(round(time.time()-$t,1))") s" >&2
  "$kiln" --data-dir "$here" audit "$work/img.tar" --format json >"$work/audit.json"
  # Every regular ELF file of both trees (4-byte magic), listed by cuobjdump in parallel.
  mkdir -p "$work/listings"
  python3 - "$site" "$img_site" "$cuda" "$img_cuda" >"$work/elves.txt" <<'PY'
import os, sys
pairs = list(zip(sys.argv[1::2], sys.argv[2::2]))
for src, dest in pairs:
    for root, dirs, files in os.walk(src):
        for n in files:
            p = os.path.join(root, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                with open(p, "rb") as f:
                    if f.read(4) != b"\x7fELF":
                        continue
            except OSError:
                continue
            print(p + "\t" + dest + "/" + os.path.relpath(p, src))
PY
  list_one() {  # host-path image-path
    local key=${2//\//_}
    "$cuobjdump" --list-elf "$1" >"$work/listings/$key.elf" 2>/dev/null || true
    "$cuobjdump" --list-ptx "$1" >"$work/listings/$key.ptx" 2>/dev/null || true
  }
  export -f list_one; export cuobjdump work
  t=$(date +%s.%N)
  tr '\t' '\n' <"$work/elves.txt" | xargs -d '\n' -n 2 -P "$(nproc)" bash -c 'list_one "$0" "$1"'
  echo "cuobjdump over $(wc -l <"$work/elves.txt") ELF files in $(python3 -c "import time;print(round(time.time()-$t,1))") s" >&2
  cut -f2 "$work/elves.txt" >"$work/listings/ALL"
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
image = audit["images"][0]
key = lambda p: p.lstrip("/").replace("/", "_")  # how a listing file is named
kiln_libs = {key(l["path"]): l for l in image.get("libraries", [])}
# Every ELF file cuobjdump was given: ALL (image paths, one a line) when the
# listing wrote one, else the names of the listing files themselves.
all_path = os.path.join(listings, "ALL")
if os.path.exists(all_path):
    all_elves = [p for p in open(all_path).read().split("\n") if p]
else:
    all_elves = sorted(n[:-len(".elf")] for n in os.listdir(listings) if n.endswith(".elf"))
checked = mismatches = missed = with_code = 0
for path in all_elves:
    elf, ptx = listed(path, "elf"), listed(path, "ptx") or []
    if elf is None:
        continue
    checked += 1
    lib = kiln_libs.get(key(path))
    if not elf and not ptx:
        if lib and (lib.get("sass") or lib.get("ptx")) and lib.get("found_by") != "scan":
            print(f"note {path}: kiln lists device code cuobjdump does not: SASS {' '.join(lib.get('sass', []))} PTX {' '.join(lib.get('ptx', []))}")
        continue
    with_code += 1
    if lib is None:
        missed += 1
        print(f"MISSED {path}: cuobjdump SASS {' '.join(elf) or '-'} | PTX {' '.join(ptx) or '-'}; kiln reports nothing")
        continue
    kiln_sass = plain(lib.get("sass", []))
    kiln_ptx = plain(p.replace("compute_", "sm_") for p in lib.get("ptx", []))
    ign_sass = plain(lib.get("sass", []) + lib.get("ignored_sass", []))
    ign_ptx = plain(p.replace("compute_", "sm_") for p in lib.get("ptx", []) + lib.get("ignored_ptx", []))
    if kiln_sass == sorted(elf) and kiln_ptx == sorted(ptx):
        print(f"same {path}: SASS {' '.join(elf) or '-'} | PTX {' '.join(ptx) or '-'}")
    for what, mine, with_ignored, theirs in (("SASS", kiln_sass, ign_sass, elf), ("PTX", kiln_ptx, ign_ptx, ptx)):
        if mine == sorted(theirs):
            continue
        if with_ignored == sorted(theirs):
            print(f"note {path} {what}: cuobjdump lists kiln's ignored entries too: {' '.join(theirs) or '-'}")
        elif lib.get("found_by") == "scan" and set(theirs) <= set(with_ignored):
            print(f"note {path} {what}: kiln scanned beyond .nv_fatbin: kiln {' '.join(mine) or '-'} | cuobjdump {' '.join(theirs) or '-'}")
        else:
            mismatches += 1
            print(f"MISMATCH {path} {what}: kiln {' '.join(mine) or '-'} | cuobjdump {' '.join(theirs) or '-'}")
# kiln counts the ELF files it examined (by magic, 52 bytes or more); the
# walk above found these. A file with device code kiln missed is MISSED
# above; a difference here alone is shown, not failed.
kiln_elves = image.get("elf_files")
if kiln_elves is not None and kiln_elves != len(all_elves):
    print(f"note ELF files: kiln examined {kiln_elves}, cuobjdump was given {len(all_elves)}")
print(f"{checked} ELF files given to cuobjdump ({kiln_elves} examined by kiln), {with_code} with device code; "
      f"{missed} listed by cuobjdump and missed by kiln; {mismatches} SASS/PTX mismatches")
sys.exit(1 if mismatches or missed else 0)
PY
