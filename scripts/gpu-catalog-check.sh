#!/usr/bin/env bash
# `kiln catalog check` on the GPU host's installed torch (no network needed):
# the facts torch 2.11.0+cu130 states about itself (torch/version.py, its
# Requires-Dist pins, the installed nvidia-* packages, libtorch_cuda.so's fat
# binaries) against the catalog. Prints the table, and keeps the table and the
# JSON in OUT_DIR (default bench/results).
# Usage: scripts/gpu-catalog-check.sh [VENV_OR_SITE_PACKAGES] [OUT_DIR]
# Env: KILN (the kiln binary; default build/src/cli/kiln, else kiln on PATH);
# KILN_DATA_DIR (the recipes/ to check; default this checkout).
set -uo pipefail
export KILN_DATA_DIR=${KILN_DATA_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
venv=${1:-/opt/torch/.venv}
out=${2:-bench/results}
kiln=${KILN:-build/src/cli/kiln}
[ -x "$kiln" ] || kiln=$(command -v kiln || true)
if [ -z "$kiln" ] || [ ! -x "$kiln" ]; then
  echo "gpu-catalog-check: no kiln binary (set KILN=/path/to/kiln)" >&2
  exit 2
fi
site=$(ls -d "$venv"/lib/python3*/site-packages 2>/dev/null | head -n1)
[ -n "$site" ] || site=$venv
if [ ! -f "$site/torch/version.py" ]; then
  echo "gpu-catalog-check: no torch installed under $venv" >&2
  exit 2
fi
mkdir -p "$out"
host=$(hostname -s 2>/dev/null || echo host)
json="$out/catalog-check-site-packages-$host.json"
table="$out/catalog-check-site-packages-$host.txt"

"$kiln" catalog check --site-packages "$site" --format json >"$json"
rc=$?
"$kiln" catalog check --site-packages "$site" --all >"$table"
{
  echo "# kiln catalog check --site-packages $site"
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) on $host; kiln exit code $rc (0: no difference, 1: differences, 2: bad input)"
  if command -v nvidia-smi >/dev/null; then
    echo "# driver $(nvidia-smi --query-gpu=driver_version,name --format=csv,noheader | head -n1)"
  fi
  if command -v cuobjdump >/dev/null; then
    echo "# cuobjdump of libtorch_cuda.so, for comparison with kiln's own reader:"
    echo "#   ELF: $(cuobjdump --list-elf "$site/torch/lib/libtorch_cuda.so" 2>/dev/null | sed -E 's/.*\.(sm_[0-9a-z]+)\.cubin.*/\1/' | sort -u | tr '\n' ' ')"
    echo "#   PTX: $(cuobjdump --list-ptx "$site/torch/lib/libtorch_cuda.so" 2>/dev/null | sed -E 's/.*\.(sm_[0-9a-z]+)\.ptx.*/\1/' | sort -u | tr '\n' ' ')"
  fi
} >>"$table"
cat "$table"
echo "kept: $table $json"
exit "$rc"
