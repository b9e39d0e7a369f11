#!/usr/bin/env bash
# Where a cold devel stage's time goes, and which of its phases two builds at
# once (kiln build -j 2) speed up. The generated devel stage of
# matrices/offline.toml is one RUN (apt-get update, download, dpkg unpack and
# configure, clean-up), a layer commit and an nvcc compile; this script runs
# those phases by hand in containers of the runtime image, on a private
# dockerd, and times each:
#
#   fetch    apt-get update + install --download-only (mirror, or --proxy)
#   unpack   apt-get install from the downloaded .debs (dpkg: unpack, configure)
#   commit   docker commit of the container (what the classic builder does
#            after each RUN: the layer's diff is tarred and hashed)
#   nvcc     the devel stage's nvcc check (sm_75, sm_90, compute_90)
#
# First one container alone, then two at once; the ratio per phase is
# (2 x alone) / (both at once): 2.0 means two builds in parallel cost the
# time of one, 1.0 means parallelism buys nothing for that phase. Each
# variant also prints how many cores the whole machine kept busy (/proc/stat)
# alone and two at once: a stage that keeps most cores busy alone leaves
# parallelism little to win.
# --unsafe-io repeats it all with dpkg's force-unsafe-io (no fsync per
# unpacked file).
#
# Usage: bench/stage-profile.sh [--proxy URL] [--unsafe-io] [--image REF]
# Env:   KILN_BENCH_DAEMON (default kprof). Needs root and ~15 GB of disk.
set -euo pipefail
cd "$(dirname "$0")/.."

proxy=""
variants=(fsync)
image=kiln.local/offline:cuda11.8-debian12-runtime
while [[ $# -gt 0 ]]; do
  case "$1" in
    --proxy) proxy=$2; shift ;;
    --unsafe-io) variants=(fsync unsafe-io) ;;
    --image) image=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "stage-profile: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

daemon=${KILN_BENCH_DAEMON:-kprof}
sock=$(tests/support/dockerd.sh start "$daemon")
dk() { DOCKER_HOST=unix://$sock docker "$@"; }
if ! dk image inspect "$image" >/dev/null 2>&1; then
  # From the default engine (the quick start built it there).
  docker image inspect "$image" >/dev/null 2>&1 ||
    { echo "stage-profile: $image is on no engine (run the quick start first)" >&2; exit 2; }
  docker save "$image" | dk load >/dev/null
fi
work=$(mktemp -d /var/tmp/kiln-stage-profile.XXXXXX)
names=()
cleanup() {
  [[ ${#names[@]} -gt 0 ]] && dk rm -f "${names[@]}" >/dev/null 2>&1
  dk images -q 'kiln-prof/*' | xargs -r env DOCKER_HOST=unix://$sock docker rmi -f >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
cp templates/context/kiln-nvcc-check.cu "$work/"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# The whole machine's busy CPU seconds (/proc/stat: user, nice, system, irq,
# softirq): over a phase's wall time, how many cores it kept busy.
hz=$(getconf CLK_TCK)
cpu_now() { awk -v hz="$hz" '/^cpu / { printf "%.1f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat; }

# The devel stage's RUN, cut into phases; prints "phase seconds" lines.
# $1: fsync | unsafe-io.
stage_script() {
  cat <<SH
set -eu
t() { date +%s.%N; }
. /etc/os-release
echo "deb http://deb.debian.org/debian \${VERSION_CODENAME} main contrib non-free" >/etc/apt/sources.list
rm -f /etc/apt/sources.list.d/debian.sources
[ "$1" = unsafe-io ] && echo force-unsafe-io >/etc/dpkg/dpkg.cfg.d/kiln-unsafe-io
px="${proxy:+-o Acquire::http::Proxy=$proxy}"
a=\$(t)
apt-get -qq \$px update >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get -qq \$px install -y --no-install-recommends --download-only nvidia-cuda-toolkit nvidia-cuda-toolkit-gcc >/dev/null
b=\$(t)
DEBIAN_FRONTEND=noninteractive apt-get -qq \$px install -y --no-install-recommends nvidia-cuda-toolkit nvidia-cuda-toolkit-gcc >/dev/null 2>&1
apt-get clean; rm -rf /var/lib/apt/lists/* /etc/dpkg/dpkg.cfg.d/kiln-unsafe-io
c=\$(t)
awk -v a=\$a -v b=\$b -v c=\$c 'BEGIN { printf "fetch %.1f\nunpack %.1f\n", b - a, c - b }'
SH
}

# run_one TAG VARIANT: the phases of one stage in container TAG; writes $work/TAG.
run_one() {
  local tag=$1 variant=$2 t0 t1 t2 t3
  names+=("$tag")
  dk create --name "$tag" --network host --user root "$image" sh -c "$(stage_script "$variant")" >/dev/null
  dk start -a "$tag" >"$work/$tag" 2>"$work/$tag.err" || { cat "$work/$tag.err" >&2; return 1; }
  t0=$(now); dk commit "$tag" "kiln-prof/$tag:1" >/dev/null; t1=$(now)
  echo "commit $(secs "$t0" "$t1")" >>"$work/$tag"
  t2=$(now)
  dk run --rm --user root -e NVCC_PREPEND_FLAGS=-ccbin=cuda-g++ -v "$work/kiln-nvcc-check.cu:/tmp/k.cu:ro" "kiln-prof/$tag:1" \
    nvcc -gencode arch=compute_75,code=sm_75 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
    -o /tmp/k /tmp/k.cu >>"$work/$tag.err" 2>&1 || { echo "stage-profile: nvcc failed in $tag:" >&2; tail -n 20 "$work/$tag.err" >&2; return 1; }
  t3=$(now)
  echo "nvcc $(secs "$t2" "$t3")" >>"$work/$tag"
  dk rm -f "$tag" >/dev/null
  dk rmi -f "kiln-prof/$tag:1" >/dev/null
}

phase() { awk -v p="$2" '$1 == p { print $2 }' "$work/$1"; }

echo "stage-profile: the devel stage of $image's chain on $sock ($(nproc) cores)${proxy:+, apt through $proxy}"
for v in "${variants[@]}"; do
  a0=$(now); c0=$(cpu_now)
  run_one "alone-$v" "$v"
  a1=$(now); c1=$(cpu_now)
  w0=$(now)
  run_one "par1-$v" "$v" & p1=$!
  run_one "par2-$v" "$v" & p2=$!
  wait "$p1"; wait "$p2"
  w1=$(now); c2=$(cpu_now)
  echo
  echo "dpkg $v:   alone   two at once (each)   ratio 2*alone/at-once"
  for ph in fetch unpack commit nvcc; do
    a=$(phase "alone-$v" "$ph"); x=$(phase "par1-$v" "$ph"); y=$(phase "par2-$v" "$ph")
    awk -v p="$ph" -v a="$a" -v x="$x" -v y="$y" 'BEGIN {
      m = (x > y ? x : y); printf "  %-7s %7.1f s  %6.1f s / %6.1f s      %.2fx\n", p, a, x, y, 2 * a / m }'
  done
  awk -v p="$work/alone-$v" -v w="$(secs "$w0" "$w1")" 'BEGIN {
    while ((getline l < p) > 0) { split(l, f, " "); s += f[2] }
    printf "  whole   %7.1f s  %6.1f s (wall, both)    %.2fx\n", s, w, 2 * s / w }'
  awk -v a="$(secs "$a0" "$a1")" -v ca="$(secs "$c0" "$c1")" -v w="$(secs "$w0" "$w1")" -v cw="$(secs "$c1" "$c2")" -v n="$(nproc)" 'BEGIN {
    printf "  cores busy (of %d): %.2f alone, %.2f two at once; CPU seconds: %.0f alone, %.0f for two\n", n, ca / a, cw / w, ca, cw }'
done
