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
# --cached: both sides go through one apt-cacher-ng the script
# starts (a fresh cache dir), kiln through the matrix's [cache] apt = its
# address, the peer through --build-arg APT_PROXY. First a warm-up: one
# kiln build with the cache cold (the quick start's cold time); then
# --runs times (default 3): kiln --no-cache with the cache warm, its images
# removed, then the peer with the same warm cache; each run prints its ratio.
# Images are removed between the sides (12+ GB each).
#
# Each run also prints the CPU time the whole machine spent on each side
# (/proc/stat; the hypervisor's steal apart) and the ratio's ceiling:
# kiln's wall time is at least its CPU time over the cores, whatever the
# scheduler does (bench/stage-profile.sh says where a stage's CPU goes).
#
# Usage: bench/shared-stages.sh [--kiln PATH] [--matrix TOML] [--only GLOB]... [--jobs N] [--cached [--runs N]]
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
cached=false
runs=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kiln) kiln=$2; shift ;;
    --matrix) matrix=$2; shift ;;
    --only) only+=("$2"); shift ;;
    --jobs|-j) jobs=$2; shift ;;
    --cached) cached=true ;;
    --runs) runs=$2; shift ;;
    -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
acng_pid=""
cleanup() {
  # The peer's images only; kiln's stay (kiln.local/...), as after a real build.
  [[ ${#peer_tags[@]} -gt 0 ]] && docker rmi -f "${peer_tags[@]}" >/dev/null 2>&1 || true
  [[ -n $acng_pid ]] && kill "$acng_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# The machine's CPU time from /proc/stat, in seconds: "busy steal" (busy:
# user, nice, system, irq, softirq; steal: time the hypervisor gave to other
# guests, the noise of a shared VM). Every process counts, the daemons'
# included: a build's work is mostly dpkg inside containers.
hz=$(getconf CLK_TCK)
cpu_now() { awk -v hz="$hz" '/^cpu / { printf "%.1f %.1f", ($2 + $3 + $4 + $7 + $8) / hz, $9 / hz }' /proc/stat; }
cpu_since() { # cpu_since "BUSY0 STEAL0" -> "busy steal" used since
  local now; now=$(cpu_now)
  awk -v a="$1" -v b="$now" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.1f %.1f", y[1] - x[1], y[2] - x[2] }'
}

# --- the selection, its stages and bases ---------------------------------
"$kiln" plan "$matrix" --format json >"$work/plan.json"
"$kiln" generate "$matrix" -o "$work/gen" >/dev/null
# The selected valid combinations, in plan order (--only globs as kiln reads them).
jq -r '.combos[] | select(.status == "valid") | .id' "$work/plan.json" | while read -r id; do
  if [[ ${#only[@]} -eq 0 ]]; then echo "$id"; continue; fi
  for g in "${only[@]}"; do if [[ $id == $g ]]; then echo "$id"; break; fi; done
done >"$work/ids"
[[ -s $work/ids ]] || { echo "shared-stages: no valid combination selected" >&2; exit 2; }
parent_of() { jq -r '.parent // "-"' "$work/gen/$1/kiln.json"; }
base_of() { jq -r --arg id "$1" '.combos[] | select(.id == $id) | .base' "$work/plan.json"; }

missing=0
while read -r id; do
  b=$(base_of "$id")
  [[ $(parent_of "$id") == - ]] && ! docker image inspect "$b" >/dev/null 2>&1 && missing=1
done <"$work/ids"
if [[ $missing -eq 1 ]]; then
  # The default engine's bases, when it has them, are quicker than debootstrap.
  bases=$(while read -r id; do if [[ $(parent_of "$id") == - ]]; then base_of "$id"; fi; done <"$work/ids" | sort -u)
  if DOCKER_HOST=unix:///var/run/docker.sock docker image inspect $bases >/dev/null 2>&1; then
    DOCKER_HOST=unix:///var/run/docker.sock docker save $bases | docker load >/dev/null
  else
    scripts/make-bases.sh
  fi
fi

n=$(wc -l <"$work/ids")
only_args=()
while read -r id; do only_args+=(--only "$id"); done <"$work/ids"

# --- kiln ------------------------------------------------------------------
# kiln_build LABEL MATRIX: one timed `kiln build --no-cache`; sets kiln_s.
kiln_build() {
  local t0 t1 c0 rc summary
  t0=$(now)
  c0=$(cpu_now)
  set +e
  "$kiln" build "$2" --state-dir "$work/state" --no-cache -j "$jobs" --format json "${only_args[@]}" >"$work/kiln.json" 2>"$work/kiln.err"
  rc=$?
  set -e
  t1=$(now)
  kiln_s=$(secs "$t0" "$t1")
  kiln_cpu=$(cpu_since "$c0")
  summary=$(jq -c .summary "$work/kiln.json" 2>/dev/null || echo '{}')
  if [[ $rc -ne 0 ]]; then
    echo "shared-stages: kiln build failed (exit $rc): $summary" >&2
    jq -r '.combos[]? | select(.outcome == "failed") | "  \(.id): \(.failed_step) \(.error) (log: \(.log))"' "$work/kiln.json" >&2 || cat "$work/kiln.err" >&2
    exit 1
  fi
  kiln_stages=$(jq '.combos | length' "$work/kiln.json")
  echo "kiln build -j $jobs$1: $kiln_s s  ($kiln_stages stages: $summary)"
  jq -r '.combos[] | "  \(.id)  \(.outcome)  \(.seconds | floor) s  \(.size // 0) bytes"' "$work/kiln.json"
}

# Removes what a side built (private daemon only), so the next side starts
# from the bases alone and the disk holds one side at a time.
drop_images() {
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^(kiln\.local|kiln-bench-seq)/' | xargs -r docker rmi -f >/dev/null 2>&1 || true
  docker image prune -f >/dev/null 2>&1 || true
  peer_tags=()
}

# --- peer: each combination built on its own, one after another ------------
# peer_build [PROXY]: sets peer_s (the sum of the docker builds), once_s, peer_builds.
peer_build() {
  local proxy=${1:-} id p prev stage tag s0 s1 t
  peer_builds=0
  first_time=()
  peer_s=0
  local c0; c0=$(cpu_now)
  while read -r id; do
    chain=("$id")
    p=$(parent_of "$id")
    while [[ $p != - ]]; do chain=("$p" "${chain[@]}"); p=$(parent_of "$p"); done
    prev=""
    for stage in "${chain[@]}"; do
      tag="kiln-bench-seq/$id:$stage"
      args=(--no-cache --network host -t "$tag")
      [[ -n $prev ]] && args+=(--build-arg "KILN_PARENT=$prev")
      [[ -n $proxy ]] && args+=(--build-arg "APT_PROXY=$proxy")
      s0=$(now)
      DOCKER_BUILDKIT=0 docker build "${args[@]}" "$work/gen/$stage" >"$work/peer-$id-$stage.log" 2>&1 ||
        { echo "shared-stages: docker build of $stage (for $id) failed; log:" >&2; tail -n 20 "$work/peer-$id-$stage.log" >&2; exit 1; }
      s1=$(now)
      peer_tags+=("$tag")
      peer_builds=$((peer_builds + 1))
      t=$(secs "$s0" "$s1")
      peer_s=$(awk -v a="$peer_s" -v b="$t" 'BEGIN { printf "%.1f", a + b }')
      [[ -z ${first_time[$stage]:-} ]] && first_time[$stage]=$t
      echo "  docker build $stage (for $id): $t s"
      prev=$tag
    done
    # Independent builds share nothing: this combination's images go before the next.
    [[ $cached == true ]] && drop_images
  done <"$work/ids"
  peer_cpu=$(cpu_since "$c0")  # includes drop_images between combinations (seconds of work at most)
  once_s=$(printf '%s\n' "${first_time[@]}" | awk '{ s += $1 } END { printf "%.1f", s }')
}

ratios() {
  echo "kiln build (each stage once, -j $jobs):              $kiln_s s  ($kiln_stages builds)"
  echo "docker build, sequential, independent:              $peer_s s  ($peer_builds builds)"
  echo "docker build, sequential, each stage once (derived): $once_s s  (${#first_time[@]} builds)"
  awk -v k="$kiln_s" -v p="$peer_s" -v o="$once_s" -v c="$1" 'BEGIN {
    printf "ratio independent docker build / kiln%s: %.2fx (goal >= 2x)\n", c, p / k
    printf "ratio sequential each-stage-once / kiln%s: %.2fx (parallelism alone)\n", c, o / k }'
  # kiln cannot finish faster than its CPU time spread over every core: that
  # bounds the ratio whatever the scheduler does.
  local n; n=$(nproc)
  ceiling=$(awk -v p="$peer_s" -v kc="$kiln_cpu" -v n="$n" 'BEGIN { split(kc, a, " "); printf "%.2f", p / (a[1] / n) }')
  awk -v k="$kiln_s" -v p="$peer_s" -v kc="$kiln_cpu" -v pc="$peer_cpu" -v n="$n" 'BEGIN {
    split(kc, a, " "); split(pc, b, " ")
    printf "CPU time, whole machine: kiln %.0f s (%.2f of %d cores busy, %.0f s stolen), docker build %.0f s (%.2f cores busy, %.0f s stolen)\n", a[1], a[1] / k, n, a[2], b[1], b[1] / p, b[2] }'
  echo "ceiling of the ratio on $n cores$1: docker build wall / (kiln CPU / $n) = ${ceiling}x"
}

declare -A first_time=()  # stage -> seconds of its first build (each stage once)

if [[ $cached == false ]]; then
  echo "shared-stages: $n combinations of $matrix on $DOCKER_HOST ($(nproc) cores), cold (--no-cache)"
  kiln_build "" "$matrix"
  peer_build ""
  echo
  ratios ""
  exit 0
fi

# --- the cached case: one apt-cacher-ng for both sides ----------------------
command -v /usr/sbin/apt-cacher-ng >/dev/null || { echo "shared-stages: --cached needs apt-cacher-ng (scripts/install-deps.sh)" >&2; exit 2; }
acng=$work/acng
port=""
for p in $(seq 23600 23700); do
  (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { port=$p; break; }
done
mkdir -p "$acng/cache" "$acng/log"
# The same configuration kiln writes for [cache] apt = "kiln" (src/build/apt_cache.cpp).
cat >"$acng/acng.conf" <<CONF
CacheDir: $acng/cache
LogDir: $acng/log
SupportDir: /usr/lib/apt-cacher-ng
Port: $port
BindAddress: 127.0.0.1
SocketPath: /tmp/kiln-bench-acng-$port.sock
PidFile: $acng/acng.pid
ForeGround: 1
ExThreshold: 4
Remap-debrep: file:deb_mirror*.gz /debian ; http://deb.debian.org/debian/
Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security /debian-security ; http://deb.debian.org/debian-security/
CONF
/usr/sbin/apt-cacher-ng -c "$acng" >"$acng/log/out" 2>&1 &
acng_pid=$!
for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
proxy=http://127.0.0.1:$port
cached_matrix=$work/$(basename "$matrix")
# The matrix as given, plus [cache] apt = the script's cache (a matrix that
# has its own [cache] keeps it out: replaced).
awk '/^\[cache\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$matrix" >"$cached_matrix"
printf '\n[cache]\napt = "%s"\n' "$proxy" >>"$cached_matrix"
# Relative paths in a matrix are relative to it: keep its directory's view.
[[ $(dirname "$(realpath "$matrix")") != "$work" ]] && grep -q 'find_links\|secret_file' "$matrix" &&
  { echo "shared-stages: --cached copies the matrix; one with relative paths is not supported" >&2; exit 2; }

# apt-cacher-ng's log: |I| a file fetched from the mirror, |O| one served.
acng_stats() {
  awk -F'|' '$2 == "I" { ib += $3 } $2 == "O" { ob += $3 } END {
    printf "%.0f MB from the mirror, %.0f MB served", ib / 1e6, ob / 1e6 }' "$acng/log/apt-cacher.log"
}
log_mark() { wc -l <"$acng/log/apt-cacher.log" 2>/dev/null || echo 0; }
acng_stats_since() {
  tail -n +"$(($1 + 1))" "$acng/log/apt-cacher.log" | awk -F'|' '$2 == "I" { ib += $3 } $2 == "O" { ob += $3 } END {
    printf "%.0f MB from the mirror, %.0f MB served from the cache", ib / 1e6, ob / 1e6 }'
}

echo "shared-stages --cached: $n combinations of $matrix on $DOCKER_HOST ($(nproc) cores), --no-cache builds, apt through apt-cacher-ng $proxy"
echo "$(date -u +%FT%TZ) warm-up: kiln build with the package cache cold"
m=$(log_mark)
kiln_build " (apt cache cold)" "$cached_matrix"
cold_s=$kiln_s
echo "  apt-cacher-ng: $(acng_stats_since "$m")"
drop_images
summary_lines=()
for run in $(seq 1 "$runs"); do
  echo
  echo "$(date -u +%FT%TZ) run $run/$runs"
  m=$(log_mark)
  kiln_build " (apt cache warm)" "$cached_matrix"
  echo "  apt-cacher-ng: $(acng_stats_since "$m")"
  drop_images
  m=$(log_mark)
  peer_build "$proxy"
  echo "  apt-cacher-ng: $(acng_stats_since "$m")"
  ratios " (run $run, warm apt cache)"
  summary_lines+=("$(awk -v r="$run" -v k="$kiln_s" -v p="$peer_s" 'BEGIN { printf "run %d: kiln %.1f s, docker build %.1f s, %.2fx", r, k, p, p / k }') (ceiling ${ceiling}x)")
done
echo
echo "kiln build, apt cache cold (warm-up): $cold_s s"
printf '%s\n' "${summary_lines[@]}"
