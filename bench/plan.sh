#!/usr/bin/env bash
# Plan + generate for a synthetic 1,000-combination matrix: wall time and
# peak memory (goals: < 0.5 s, < 50 MB), with `docker buildx bake --print`
# of the same generated bake file as the peer (it parses and resolves the
# same 1,000 targets), run in this script so both see the same machine.
# Usage: bench/plan.sh [path/to/kiln]
set -euo pipefail
cd "$(dirname "$0")/.."
kiln=${1:-build/src/cli/kiln}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 10 PyTorch x 10 CUDA x 5 OS x 2 flavors = 1,000 combinations (most are
# excluded by catalog rules, which is the expensive path: every reason is
# worked out and written).
cat >"$tmp/synthetic.toml" <<'TOML'
name = "synthetic"
targets = ["P100", "V100", "T4", "A100", "L4", "H100", "B200"]
[axes]
pytorch = ["2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "2.9"]
cuda = ["11.7", "11.8", "12.1", "12.4", "12.6", "12.8", "12.9", "13.0", "12.0", "12.2"]
os = ["ubuntu20.04", "ubuntu22.04", "ubuntu24.04", "debian12", "debian13"]
flavor = ["runtime", "devel"]
[policy]
targets = "report"
[tags]
templates = ["{id}"]
TOML

measure() {  # measure OUT_PREFIX CMD...: best-of-5 wall seconds, max RSS MB
  local best=999 rss=0
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f "%e %M" -o "$tmp/t" "$@" >/dev/null 2>&1
    read -r secs kb <"$tmp/t"
    best=$(python3 -c "print(min($best, $secs))")
    rss=$((kb / 1024 > rss ? kb / 1024 : rss))
  done
  echo "$best $rss"
}

"$kiln" plan "$tmp/synthetic.toml" --format json >"$tmp/plan.json"
combos=$(python3 -c "import json;j=json.load(open('$tmp/plan.json'));print(len(j['combos']), j['summary']['valid'])")
read -r plan_s plan_mb < <(measure "$kiln" plan "$tmp/synthetic.toml" --format json)
read -r gen_s gen_mb < <(measure "$kiln" generate "$tmp/synthetic.toml" -o "$tmp/out")
read -r both_s both_mb < <(measure bash -c "'$kiln' plan '$tmp/synthetic.toml' --format json >/dev/null && '$kiln' generate '$tmp/synthetic.toml' -o '$tmp/out2'")

echo "combinations (total valid): $combos"
printf "kiln plan --format json   %6.3f s  %4d MB\n" "$plan_s" "$plan_mb"
printf "kiln generate             %6.3f s  %4d MB\n" "$gen_s" "$gen_mb"
printf "plan + generate           %6.3f s  %4d MB   (goal < 0.5 s, < 50 MB)\n" "$both_s" "$both_mb"
if docker buildx version >/dev/null 2>&1; then
  read -r bake_s _ < <(measure bash -c "cd '$tmp/out' && docker buildx bake -f docker-bake.json --print")
  printf "peer: buildx bake --print %6.3f s  (same bake file)\n" "$bake_s"
  python3 -c "print(f'ratio kiln plan+generate / bake --print: {$both_s/$bake_s:.2f}x')"
fi
