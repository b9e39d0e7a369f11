#!/usr/bin/env bash
# Retagging an image that is already in the registry, three ways, on the
# local registry (default 127.0.0.1:5000):
#   kiln    `kiln bench-retag`: promote's own tag write (absence confirmed
#           by manifest HEAD and tag list, the exact manifest bytes PUT, read
#           back) -- no layer moves, so the time should not grow with size;
#   skopeo  `skopeo copy docker://REG/REPO:src docker://REG/REPO:new`;
#   docker  `docker tag` + `docker push` (the engine checks every layer).
# Each is one process per tag, timed from this script, for a small image
# (busybox-static) and a multi-GB one (busybox-static + a file of random
# bytes, BENCH_BIG_MB, default 2048; made here, never in CI). Prints ms per
# tag, the ratio to skopeo (goals: <= 50 ms/tag, >= 5x) and then a soak:
# 1,000 retags of distinct manifests, each with its verification record,
# all read back (none may be lost).
#   bench/promote.sh [KILN] [RESULTS_FILE]
# Needs a Docker engine (DOCKER_HOST), skopeo, busybox-static; writes only
# repositories named bench-promote-<pid>/... and local images of that name.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
kiln=${1:-$here/build/src/cli/kiln}
out=${2:-}
reg=${BENCH_REGISTRY:-127.0.0.1:5000}
big_mb=${BENCH_BIG_MB:-2048}
n=${BENCH_TAGS:-20}
soak=${BENCH_SOAK:-1000}
batch=${BENCH_BATCH:-100}
ns=bench-promote-$$
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  docker images -q --filter "reference=$reg/$ns/*" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
}
trap cleanup EXIT

curl -fsS "http://$reg/v2/" >/dev/null || { echo "bench/promote.sh: no registry answers at $reg" >&2; exit 2; }
[[ -x /bin/busybox ]] || { echo "bench/promote.sh: needs busybox-static" >&2; exit 2; }

# Images: a rootfs tar imported, pushed once by the engine under :src.
make_image() {  # make_image NAME EXTRA_MB
  local root=$work/$1
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  ln -sf busybox "$root/bin/sh"
  if (($2 > 0)); then head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$root/blob"; fi
  tar -C "$root" -cf - . | docker import - "$reg/$ns/$1:src" >/dev/null
  rm -rf "$root"
  docker push "$reg/$ns/$1:src" >/dev/null
}

now_ms() { date +%s%3N; }

# ms per tag of `fn REPO TAG`, over $n fresh tags, one process each.
per_tag() {
  local fn=$1 repo=$2 start end
  start=$(now_ms)
  for i in $(seq 1 "$n"); do "$fn" "$repo" "$fn-$i" >/dev/null 2>&1 || { echo "FAILED: $fn $repo $i" >&2; return 1; }; done
  end=$(now_ms)
  python3 -c "print(round(($end - $start) / $n, 1))"
}
# ms per tag of kiln writing $batch tags in one process, as promote writes
# every tag of a matrix in one process.
in_process() {
  local repo=$1 start end
  start=$(now_ms)
  "$kiln" bench-retag "$reg/$repo:src" $(seq -f 'batch-%g' 1 "$batch") >"$work/batch.json"
  end=$(now_ms)
  python3 -c "import json; assert all(t['action'] == 'retagged' for t in json.load(open('$work/batch.json'))['tags'])"
  python3 -c "print(round(($end - $start) / $batch, 1))"
}
kiln_tag() { "$kiln" bench-retag "$reg/$1:src" "$2"; }
skopeo_tag() { skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false "docker://$reg/$1:src" "docker://$reg/$1:$2"; }
docker_tag() { docker tag "$reg/$1:src" "$reg/$1:$2" && docker push "$reg/$1:$2"; }
ratio() { python3 -c "print(round($1 / max($2, 0.1), 1))"; }

report() {
  echo "kiln bench/promote.sh  $(date -u +%Y-%m-%dT%H:%M:%SZ)  registry $reg (CNCF distribution $(docker-registry --version 2>/dev/null | awk '{print $3}')), $(nproc) cores, skopeo $(skopeo --version | awk '{print $3}'), docker $(docker version --format '{{.Server.Version}}'), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "ms per tag (lower is better). kiln/proc, skopeo, docker: one process per tag, $n tags each;"
  echo "kiln/1proc: $batch tags written by one kiln process (how promote writes a matrix's tags)"
  printf '%-18s %10s %10s %8s %8s %14s %14s\n' image kiln/proc kiln/1proc skopeo docker "skopeo÷kiln/proc" "skopeo÷kiln/1proc"
  for img in small big; do
    local repo=$ns/$img size k b s d
    size=$(docker image inspect "$reg/$repo:src" --format '{{.Size}}')
    k=$(per_tag kiln_tag "$repo")
    b=$(in_process "$repo")
    s=$(per_tag skopeo_tag "$repo")
    d=$(per_tag docker_tag "$repo")
    printf '%-18s %10s %10s %8s %8s %13sx %13sx\n' "$img ($((size / 1024 / 1024)) MB)" "$k" "$b" "$s" "$d" "$(ratio "$s" "$k")" "$(ratio "$s" "$b")"
  done
  echo "soak: $soak retags of distinct manifests, each with its verification record, all read back"
  "$kiln" bench-retag "$reg/$ns/small:src" --soak "$soak" | python3 -c '
import json, sys
j = json.load(sys.stdin)
print("  retags %d, tagged %d, records attached %d, tags read back %d, records read back %d, lost %d; %.1f ms per retag+record"
      % (j["retags"], j["tagged"], j["records_attached"], j["tags_read_back"], j["records_read_back"], j["lost"],
         j["ms_per_retag_with_record"]))
sys.exit(1 if j["lost"] else 0)'
}

make_image small 0
make_image big "$big_mb"
if [[ -n "$out" ]]; then report | tee "$out"; else report; fi
