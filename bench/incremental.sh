#!/usr/bin/env bash
# A no-op rerun: `kiln build` of a matrix that is already built, against
# `docker buildx bake` of the same generated bake file with a warm BuildKit
# cache, on the same private dockerd. Goal: kiln >= 10x faster.
#
#   kiln: the ledger knows every stage's input hash and image; a rerun
#         hashes the rendered inputs, checks the image is still on the
#         engine, and builds nothing (every stage `cached`).
#   peer: bake sends every context to BuildKit and resolves every step
#         against its cache (all CACHED), then exports the images.
#         The bake file is kiln's docker-bake.json, written in bake's
#         compose form (same targets, contexts and Dockerfiles) for two
#         changes: each target's tag is
#         kiln-bench-bake:<target> (so bake never moves kiln's kiln.local/
#         names), and RUN steps use network host (the private daemon has no
#         bridge; kiln builds with network host too). buildx 0.13 has no
#         `network` key in bake's own format (--set '*.network=host' is
#         "unknown key"); its compose reader takes build.network. And the
#         copy it builds lacks the "# syntax=docker/dockerfile:1" line (a
#         Docker Hub pull, unreachable here; see below).
#
# Both are warmed first (the first runs may build for minutes: BuildKit and
# the classic builder keep separate caches); then each is timed best of
# RUNS (default 5).
#
# Usage: bench/incremental.sh [--kiln PATH] [--matrix TOML] [--runs N]
# Env:   KILN_BENCH_DAEMON  private dockerd name (default kbench; tests/support/dockerd.sh)
#        KILN_BENCH_STATE   kiln's state dir, kept between runs (default /var/tmp/kiln-bench/<daemon>)
# Needs root (a private dockerd; make-bases.sh for missing bases). Not run in CI.
set -euo pipefail
command -v jq >/dev/null || { echo "$0: needs jq (apt-get install jq)" >&2; exit 2; }
cd "$(dirname "$0")/.."

kiln=build/src/cli/kiln
matrix=matrices/offline.toml
runs=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kiln) kiln=$2; shift ;;
    --matrix) matrix=$2; shift ;;
    --runs) runs=$2; shift ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "incremental: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
[[ -x $kiln ]] || { echo "incremental: no kiln at $kiln (cmake --build build)" >&2; exit 2; }
kiln=$(realpath "$kiln")
matrix=$(realpath "$matrix")
docker buildx version >/dev/null 2>&1 || { echo "incremental: docker buildx is not installed" >&2; exit 2; }

daemon=${KILN_BENCH_DAEMON:-kbench}
sock=$(tests/support/dockerd.sh start "$daemon")
export DOCKER_HOST=unix://$sock
state=${KILN_BENCH_STATE:-/var/tmp/kiln-bench/$daemon}
# kiln's images and BuildKit's own copy of them: ~25 GB for the offline matrix.
free_gb=$(df -Pk "$(dirname "$(dirname "$sock")")" /var/lib | awk 'NR > 1 { f = $4 / 1048576; if (m == "" || f < m) m = f } END { printf "%d", m }')
[[ $free_gb -ge 30 ]] || echo "incremental: warning: ${free_gb} GB free; building the offline matrix twice (kiln, then BuildKit) needs ~25 GB" >&2
mkdir -p "$state"
gen=$state/generated
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
best() { sort -g | head -n 1; }

# --- bases, generated tree, bake file --------------------------------------
"$kiln" plan "$matrix" --format json >"$work/plan.json"
missing=0
for b in $(jq -r '.combos[] | select(.status == "valid") | .base' "$work/plan.json" | sort -u); do
  docker image inspect "$b" >/dev/null 2>&1 || missing=1
done
[[ $missing -eq 1 ]] && scripts/make-bases.sh
"$kiln" generate "$matrix" -o "$gen" >/dev/null
# The generated Dockerfiles start with "# syntax=docker/dockerfile:1", which
# makes BuildKit fetch that frontend from Docker Hub (unreachable here); the
# peer builds a copy without that line, with BuildKit's built-in frontend.
rm -rf "$state/bake-tree"
cp -r "$gen" "$state/bake-tree"
sed -i '1{/^# syntax=/d}' "$state/bake-tree"/*/Dockerfile
gen=$state/bake-tree
# Docker 20.10's embedded BuildKit (v0.8) lacks named contexts ("unsupported
# frontend capability moby.buildkit.frontend.contexts"), so the bake file's
# target: parent contexts cannot run on this engine. The peer hands a devel
# target its parent as kiln does, by image name (build-arg KILN_PARENT), and
# bakes in two rounds: the runtime targets, then the targets built on them.
# JSON is YAML: the .yaml name makes bake read it as a compose file.
jq '{services: (.target | with_entries(.value = {image: ("kiln-bench-bake:" + .key),
      build: ({context: .value.context, dockerfile: .value.dockerfile, network: "host"}
              + (if .value.contexts then {args: {KILN_PARENT: ("kiln-bench-bake:" + (.value.contexts[] | sub("^target:"; "")))}} else {} end))}))}' \
  "$gen/docker-bake.json" >"$gen/bench-bake.yaml"
n=$(jq '.services | length' "$gen/bench-bake.yaml")
mapfile -t roots < <(jq -r '.target | to_entries[] | select(.value.contexts == null) | .key' "$gen/docker-bake.json")
mapfile -t children < <(jq -r '.target | to_entries[] | select(.value.contexts != null) | .key' "$gen/docker-bake.json")
echo "incremental: $n combinations of $matrix on $DOCKER_HOST ($(nproc) cores); kiln state $state"

# --- kiln: warm, then time no-op reruns ------------------------------------
kiln_build() { "$kiln" build "$matrix" --state-dir "$state" --format json >"$work/kiln.json" 2>"$work/kiln.err"; }
t0=$(now)
kiln_build || { echo "incremental: kiln build failed:" >&2; jq -c .summary "$work/kiln.json" >&2 || cat "$work/kiln.err" >&2; exit 1; }
echo "kiln warm-up: $(secs "$t0" "$(now)") s  $(jq -c .summary "$work/kiln.json")"
for _ in $(seq "$runs"); do
  t0=$(now)
  kiln_build
  t1=$(now)
  cached=$(jq '.summary.cached' "$work/kiln.json")
  [[ $cached -eq $n ]] || { echo "incremental: a rerun was not a no-op: $(jq -c .summary "$work/kiln.json")" >&2; exit 1; }
  secs "$t0" "$t1" >>"$work/kiln.times"
done
kiln_s=$(best <"$work/kiln.times")

# --- bake: warm, then time warm-cache reruns -------------------------------
bake() {
  (cd "$gen" && docker buildx bake -f bench-bake.yaml --progress plain "${roots[@]}" &&
    { [[ ${#children[@]} -eq 0 ]] || docker buildx bake -f bench-bake.yaml --progress plain "${children[@]}"; }) >"$work/bake.log" 2>&1
}
t0=$(now)
bake || { echo "incremental: bake failed; last lines:" >&2; tail -n 30 "$work/bake.log" >&2; exit 1; }
echo "bake warm-up: $(secs "$t0" "$(now)") s"
for _ in $(seq "$runs"); do
  t0=$(now)
  bake || { echo "incremental: bake failed; last lines:" >&2; tail -n 30 "$work/bake.log" >&2; exit 1; }
  t1=$(now)
  grep -q ' CACHED' "$work/bake.log" || { echo "incremental: bake rerun used no cache?" >&2; tail -n 30 "$work/bake.log" >&2; exit 1; }
  secs "$t0" "$t1" >>"$work/bake.times"
done
bake_s=$(best <"$work/bake.times")

echo
echo "kiln build, no-op rerun ($n cached):        $kiln_s s  (best of $runs: $(paste -sd' ' "$work/kiln.times"))"
echo "docker buildx bake, warm cache ($n targets): $bake_s s  (best of $runs: $(paste -sd' ' "$work/bake.times"))"
awk -v k="$kiln_s" -v b="$bake_s" 'BEGIN { printf "ratio bake / kiln: %.1fx (goal >= 10x)\n", b / k }'
