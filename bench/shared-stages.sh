#!/usr/bin/env bash
# kiln build of N combinations against sequential, independent `docker build`
# of the same generated Dockerfiles, both cold (no layer cache), on the same
# private dockerd. Goal: kiln >= 2x faster.
#
#   kiln: one `kiln build --no-cache -j JOBS`: every stage once, devel stages
#         FROM their runtime sibling's fresh image, independent chains in
#         parallel.
#   peer: for each combination on its own, in plan order, `docker build
#         --no-cache` of its chain (a devel combination's runtime parent is
#         built again for it: nothing is shared between independent builds).
#         The classic builder (DOCKER_BUILDKIT=0), as kiln's "engine" backend
#         uses, so the difference is the orchestration only. Each docker
#         build is timed, so the script also prints "sequential, each stage
#         once" (the peer's builds minus the repeated parents): what
#         parallelism alone gives.
#
# Usage: bench/shared-stages.sh [--kiln PATH] [--matrix TOML] [--only GLOB]... [--jobs N]
# Env:   KILN_BENCH_DAEMON  private dockerd name (default kbench; tests/support/dockerd.sh)
# Needs root (a private dockerd; make-bases.sh for missing bases). Takes minutes:
# every stage really installs CUDA from Debian's mirror. Not run in CI.
set -euo pipefail
command -v jq >/dev/null || { echo "$0: needs jq (apt-get install jq)" >&2; exit 2; }
cd "$(dirname "$0")/.."

kiln=build/src/cli/kiln
matrix=matrices/offline.toml
jobs=2
only=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kiln) kiln=$2; shift ;;
    --matrix) matrix=$2; shift ;;
    --only) only+=("$2"); shift ;;
    --jobs|-j) jobs=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "shared-stages: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
[[ -x $kiln ]] || { echo "shared-stages: no kiln at $kiln (cmake --build build)" >&2; exit 2; }
kiln=$(realpath "$kiln")

daemon=${KILN_BENCH_DAEMON:-kbench}
sock=$(tests/support/dockerd.sh start "$daemon")
export DOCKER_HOST=unix://$sock

work=$(mktemp -d /var/tmp/kiln-bench-shared.XXXXXX)
peer_tags=()
cleanup() {
  # The peer's images only; kiln's stay (kiln.local/...), as after a real build.
  [[ ${#peer_tags[@]} -gt 0 ]] && docker rmi -f "${peer_tags[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- the selection, its stages and bases ---------------------------------
"$kiln" plan "$matrix" --format json >"$work/plan.json"
"$kiln" generate "$matrix" -o "$work/gen" >/dev/null
# The selected valid combinations, in plan order (--only globs as kiln reads them).
jq -r '.combos[] | select(.status == "valid") | .id' "$work/plan.json" | while read -r id; do
  if [[ ${#only[@]} -eq 0 ]]; then echo "$id"; continue; fi
  for g in "${only[@]}"; do [[ $id == $g ]] && { echo "$id"; break; }; done
done >"$work/ids"
[[ -s $work/ids ]] || { echo "shared-stages: no valid combination selected" >&2; exit 2; }
parent_of() { jq -r '.parent // "-"' "$work/gen/$1/kiln.json"; }
base_of() { jq -r --arg id "$1" '.combos[] | select(.id == $id) | .base' "$work/plan.json"; }

missing=0
while read -r id; do
  b=$(base_of "$id")
  [[ $(parent_of "$id") == - ]] && ! docker image inspect "$b" >/dev/null 2>&1 && missing=1
done <"$work/ids"
[[ $missing -eq 1 ]] && scripts/make-bases.sh

n=$(wc -l <"$work/ids")
only_args=()
while read -r id; do only_args+=(--only "$id"); done <"$work/ids"

echo "shared-stages: $n combinations of $matrix on $DOCKER_HOST ($(nproc) cores), cold (--no-cache)"

# --- kiln ------------------------------------------------------------------
t0=$(now)
set +e
"$kiln" build "$matrix" --state-dir "$work/state" --no-cache -j "$jobs" --format json "${only_args[@]}" >"$work/kiln.json" 2>"$work/kiln.err"
rc=$?
set -e
t1=$(now)
kiln_s=$(secs "$t0" "$t1")
summary=$(jq -c .summary "$work/kiln.json" 2>/dev/null || echo '{}')
if [[ $rc -ne 0 ]]; then
  echo "shared-stages: kiln build failed (exit $rc): $summary" >&2
  jq -r '.stages[]? | select(.outcome == "failed") | "  \(.id): \(.failed_step) \(.error) (log: \(.log))"' "$work/kiln.json" >&2 || cat "$work/kiln.err" >&2
  exit 1
fi
kiln_stages=$(jq '.stages | length' "$work/kiln.json")
echo "kiln build -j $jobs: $kiln_s s  ($kiln_stages stages: $summary)"
jq -r '.stages[] | "  \(.id)  \(.outcome)  \(.seconds | floor) s"' "$work/kiln.json"

# --- peer: each combination built on its own, one after another ------------
peer_builds=0
declare -A first_time=()  # stage -> seconds of its first build (each stage once)
t0=$(now)
while read -r id; do
  chain=("$id")
  p=$(parent_of "$id")
  while [[ $p != - ]]; do chain=("$p" "${chain[@]}"); p=$(parent_of "$p"); done
  prev=""
  for stage in "${chain[@]}"; do
    tag="kiln-bench-seq/$id:$stage"
    args=(--no-cache --network host -t "$tag")
    [[ -n $prev ]] && args+=(--build-arg "KILN_PARENT=$prev")
    s0=$(now)
    DOCKER_BUILDKIT=0 docker build "${args[@]}" "$work/gen/$stage" >"$work/peer-$id-$stage.log" 2>&1 ||
      { echo "shared-stages: docker build of $stage (for $id) failed; log:" >&2; tail -n 20 "$work/peer-$id-$stage.log" >&2; exit 1; }
    s1=$(now)
    peer_tags+=("$tag")
    peer_builds=$((peer_builds + 1))
    [[ -z ${first_time[$stage]:-} ]] && first_time[$stage]=$(secs "$s0" "$s1")
    echo "  docker build $stage (for $id): $(secs "$s0" "$s1") s"
    prev=$tag
  done
done <"$work/ids"
t1=$(now)
peer_s=$(secs "$t0" "$t1")
once_s=$(printf '%s\n' "${first_time[@]}" | awk '{ s += $1 } END { printf "%.1f", s }')

echo
echo "kiln build (each stage once, -j $jobs):              $kiln_s s  ($kiln_stages builds)"
echo "docker build, sequential, independent:              $peer_s s  ($peer_builds builds)"
echo "docker build, sequential, each stage once (derived): $once_s s  (${#first_time[@]} builds)"
awk -v k="$kiln_s" -v p="$peer_s" -v o="$once_s" 'BEGIN {
  printf "ratio independent docker build / kiln: %.2fx (goal >= 2x)\n", p / k
  printf "ratio sequential each-stage-once / kiln: %.2fx (parallelism alone)\n", o / k }'
