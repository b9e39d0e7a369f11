#!/usr/bin/env bash
# Lets this amd64 machine's Docker engine run arm64 (aarch64) RUN steps and
# containers, through qemu-user-static registered with binfmt_misc, and
# checks that it does. Idempotent: what is already there is kept.
#
#   1. binfmt_misc is mounted at /proc/sys/fs/binfmt_misc (mounted if not)
#   2. qemu-aarch64 is registered with the F (fix-binary) flag: the kernel
#      opens the interpreter once, at registration, so it works inside every
#      container's mount namespace (no qemu binary in the image). Debian 12's
#      qemu-user-static ships that entry in /usr/lib/binfmt.d/qemu-aarch64.conf
#      (flags OPF); it is written to binfmt_misc/register when absent.
#   3. with --check (default) or --check-only: `docker run --platform
#      linux/arm64 IMAGE uname -m` must print aarch64. IMAGE is the first
#      arm64 image the engine has among kiln/debian:12-arm64, kiln/debian:13-arm64
#      (scripts/make-bases.sh --arch arm64), or --image NAME.
#
# Usage: scripts/setup-qemu.sh [--no-check | --check-only] [--image NAME]
# Needs root (mount, register) and qemu-user-static (scripts/install-deps.sh).
# Exit: 0 ready, 2 something is missing (the message says what).
set -euo pipefail

check=1
register=1
image=""
die() { echo "setup-qemu: error: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-check) check=0 ;;
    --check-only) register=0 ;;
    --image) [[ $# -ge 2 ]] || die "--image needs a name"; image="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (expected --no-check, --check-only, --image NAME)" ;;
  esac
  shift
done

binfmt=/proc/sys/fs/binfmt_misc
entry=$binfmt/qemu-aarch64
conf=/usr/lib/binfmt.d/qemu-aarch64.conf

if [[ $register -eq 1 ]]; then
  if [[ ! -e $binfmt/register ]]; then
    [[ $(id -u) -eq 0 ]] || die "binfmt_misc is not mounted and this is not root: mount -t binfmt_misc binfmt_misc $binfmt"
    mount -t binfmt_misc binfmt_misc "$binfmt" || die "cannot mount binfmt_misc on $binfmt"
  fi
  if [[ ! -e $entry ]]; then
    [[ -r $conf ]] || die "$conf missing: apt-get install qemu-user-static (scripts/install-deps.sh installs it)"
    [[ $(id -u) -eq 0 ]] || die "qemu-aarch64 is not registered and this is not root"
    # One line ":name:type:offset:magic:mask:interpreter:flags"; an entry
    # registered meanwhile by someone else makes the write fail with EEXIST.
    if ! cat "$conf" >"$binfmt/register" 2>/dev/null && [[ ! -e $entry ]]; then
      die "could not register $conf with binfmt_misc"
    fi
    echo "setup-qemu: registered qemu-aarch64 from $conf"
  fi
fi

[[ -e $entry ]] || die "qemu-aarch64 is not registered with binfmt_misc (run this script as root without --check-only)"
grep -q '^enabled' "$entry" || die "$entry is disabled (echo 1 > $entry)"
flags=$(awk '/^flags:/ { print $2 }' "$entry")
[[ $flags == *F* ]] || die "$entry has flags '$flags' without F (fix-binary): containers would not find the interpreter; \
echo -1 > $entry and run this script again"
interp=$(awk '/^interpreter/ { print $2 }' "$entry")
echo "setup-qemu: qemu-aarch64 registered (interpreter $interp, flags $flags)"

[[ $check -eq 1 ]] || exit 0
command -v docker >/dev/null || die "docker CLI not found"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || die "cannot reach the Docker engine at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
if [[ -z $image ]]; then
  for candidate in kiln/debian:12-arm64 kiln/debian:13-arm64; do
    if docker image inspect "$candidate" >/dev/null 2>&1; then image=$candidate; break; fi
  done
fi
[[ -n $image ]] || die "no arm64 image to check with: scripts/make-bases.sh --arch arm64 12 makes kiln/debian:12-arm64 (or give --image)"
arch=$(docker image inspect --format '{{.Architecture}}' "$image")
[[ $arch == arm64 ]] || die "$image is a $arch image, not arm64"
got=$(docker run --rm --network none --platform linux/arm64 "$image" uname -m 2>&1) \
  || die "docker run --platform linux/arm64 $image uname -m failed: $got"
[[ $got == aarch64 ]] || die "docker run --platform linux/arm64 $image uname -m printed '$got', not aarch64"
echo "setup-qemu: docker run --platform linux/arm64 $image uname -m = $got"
