#!/usr/bin/env bash
# Makes the local Debian base images that kiln's offline matrix builds on,
# with no Docker Hub: a minimal root filesystem from debootstrap
# (--variant=minbase, from a Debian mirror) imported with `docker import`.
#
#   kiln/debian:12  (also kiln/debian:bookworm)
#   kiln/debian:13  (also kiln/debian:trixie)
#
# With --arch arm64 (Grace Hopper, GB200 hosts): the same bases for linux/arm64,
# named with an -arm64 suffix (kiln/debian:12-arm64, kiln/debian:bookworm-arm64),
# loaded with scripts/load-rootfs.py as a linux/arm64 image (Docker 20.10's
# `docker import --platform` keeps the daemon's architecture). debootstrap's second
# stage runs arm64 binaries in the chroot, so qemu-aarch64 must be registered
# with binfmt_misc first (scripts/setup-qemu.sh does it, and checks it).
#
# Usage: scripts/make-bases.sh [--force] [--arch amd64|arm64] [--mirror URL] [12|13|bookworm|trixie ...]
#
#   --force       rebuild an image even if it already exists
#   --mirror URL  Debian mirror (default $DEBIAN_MIRROR or http://deb.debian.org/debian);
#                 the image's sources list points at http://deb.debian.org/debian
#                 whatever mirror built it, unless --keep-mirror is given
#   --keep-mirror write the --mirror URL into the image's sources list
#   --arch ARCH   amd64 (default) or arm64; arm64 runs under emulation (slower)
#
# Idempotent: an image that `docker image inspect` finds is skipped. The
# engine is DOCKER_HOST's if set (the docker CLI reads it). Needs root (for
# debootstrap), debootstrap and debian-archive-keyring (which carries the
# trixie keys on a bookworm host). The temporary root filesystem is removed
# even when a step fails or the script is interrupted.
set -euo pipefail

force=0
keep_mirror=0
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
image_mirror="http://deb.debian.org/debian"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
repo=kiln/debian
arch=amd64
suites=()

die() { echo "make-bases: error: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) force=1 ;;
    --mirror) [[ $# -ge 2 ]] || die "--mirror needs a URL"; mirror="$2"; shift ;;
    --mirror=*) mirror="${1#--mirror=}" ;;
    --keep-mirror) keep_mirror=1 ;;
    --arch) [[ $# -ge 2 ]] || die "--arch needs amd64 or arm64"; arch="$2"; shift ;;
    --arch=*) arch="${1#--arch=}" ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    12|bookworm) suites+=(bookworm) ;;
    13|trixie) suites+=(trixie) ;;
    *) die "unknown argument '$1' (expected --force, --mirror URL, 12, 13, bookworm or trixie)" ;;
  esac
  shift
done
[[ ${#suites[@]} -gt 0 ]] || suites=(bookworm trixie)
[[ $keep_mirror -eq 1 ]] && image_mirror="$mirror"
case "$arch" in
  amd64|x86_64|linux/amd64) arch=amd64; suffix="" ;;
  arm64|aarch64|linux/arm64) arch=arm64; suffix="-arm64" ;;
  *) die "unknown --arch '$arch' (expected amd64 or arm64)" ;;
esac

version_of() { case "$1" in bookworm) echo 12 ;; trixie) echo 13 ;; esac; }

# --- preconditions ---------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "debootstrap needs root; run as root (or through sudo)"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap (scripts/install-deps.sh installs it)"
command -v docker >/dev/null || die "docker CLI not found (scripts/install-deps.sh installs docker.io)"
[[ -r $keyring ]] || die "$keyring missing: apt-get install debian-archive-keyring"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || die "cannot reach the Docker engine at ${DOCKER_HOST:-unix:///var/run/docker.sock} (is dockerd running?)"
if [[ $arch != "$(dpkg --print-architecture)" ]]; then
  # debootstrap's second stage runs the target's binaries in the chroot.
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] \
    || die "$arch binaries cannot run here: qemu-aarch64 is not registered with binfmt_misc (run scripts/setup-qemu.sh --no-check)"
fi
for s in "${suites[@]}"; do
  [[ -e /usr/share/debootstrap/scripts/$s ]] || die "this debootstrap does not know '$s': upgrade debootstrap"
done

# --- temporary root filesystem, cleaned on every exit ----------------------
workdir=""
boot_pid=""
cleanup() {
  local rc=$?
  if [[ -n $boot_pid ]] && kill -0 "$boot_pid" 2>/dev/null; then
    # Interrupted mid-debootstrap: stop it and everything it started (its
    # own process group, from setsid) before removing what it was writing.
    # (kill -0 cannot tell: the unreaped child stays a zombie until wait.)
    kill -TERM -- "-$boot_pid" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$boot_pid" 2>/dev/null || true
    wait "$boot_pid" 2>/dev/null || true
  fi
  if [[ -n $workdir && -d $workdir ]]; then
    # debootstrap mounts /proc and /sys inside the target; a failed run can
    # leave them mounted, and rm -rf must never walk into them.
    local m
    while read -r m; do umount -l "$m" 2>/dev/null || true; done \
      < <(awk -v p="$workdir/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf --one-file-system "$workdir"
    [[ $rc -ne 0 ]] && echo "make-bases: stopped (exit $rc); removed $workdir" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

total_start=$(now)
echo "make-bases: engine ${DOCKER_HOST:-unix:///var/run/docker.sock} (server $(docker version --format '{{.Server.Version}}')), mirror $mirror"

for suite in "${suites[@]}"; do
  version=$(version_of "$suite")
  image="$repo:$version$suffix"
  if [[ $force -eq 0 ]] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "make-bases: $image exists ($(docker image inspect --format '{{.Id}}' "$image")), skipped (--force rebuilds)"
    continue
  fi

  start=$(now)
  workdir=$(mktemp -d /var/tmp/kiln-base-"$suite".XXXXXX)
  rootfs="$workdir/rootfs"
  echo "make-bases: $image: debootstrap --variant=minbase --arch=$arch $suite from $mirror"
  # In the background, in its own process group, so that an interrupt reaches
  # the trap at once (bash runs traps only between foreground commands).
  setsid debootstrap --variant=minbase --arch="$arch" --keyring="$keyring" --components=main \
    "$suite" "$rootfs" "$mirror" >"$workdir/debootstrap.log" 2>&1 </dev/null &
  boot_pid=$!
  boot_rc=0
  wait "$boot_pid" || boot_rc=$?
  boot_pid=""
  if [[ $boot_rc -ne 0 ]]; then
    echo "make-bases: error: debootstrap $suite failed; last lines of its log:" >&2
    tail -n 30 "$workdir/debootstrap.log" >&2
    [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    exit 1
  fi
  boot_done=$(now)

  # Image hygiene, as Debian's official images do: one sources list pointing
  # at the public mirror (with updates and security), no apt caches or
  # lists, no logs of the bootstrap, apt keeps no downloaded packages.
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $image_mirror $suite main
deb $image_mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
  rm -f "$rootfs/etc/apt/sources.list.d/"*.sources
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
         "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log \
         "$rootfs"/var/log/apt/* "$rootfs"/debootstrap
  : >"$rootfs/etc/hostname"
  rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/machine-id"
  : >"$rootfs/etc/machine-id"

  debian_version=$(cat "$rootfs/etc/debian_version")
  created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  stamp=$(date -u +%Y%m%d)
  docker_args=(
    --change 'CMD ["/bin/bash"]'
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'ENV LANG=C.UTF-8'
    --change "LABEL org.opencontainers.image.title=\"kiln/debian:$version$suffix\""
    --change "LABEL org.opencontainers.image.description=\"Debian $version ($suite) minbase, debootstrap $suite from $mirror\""
    --change "LABEL org.opencontainers.image.version=\"$debian_version\""
    --change "LABEL org.opencontainers.image.created=\"$created\""
    --change "LABEL org.opencontainers.image.vendor=\"kiln (scripts/make-bases.sh)\""
    --change "LABEL org.opencontainers.image.source=\"$mirror\""
    --change "LABEL io.kiln.debian.suite=\"$suite\""
    --change "LABEL io.kiln.debian.debootstrap-date=\"$created\""
    --change "LABEL io.kiln.debian.variant=\"minbase\""
    --message "kiln: debootstrap --variant=minbase $suite $mirror ($created)"
  )
  if [[ $arch == "$(dpkg --print-architecture)" ]]; then
    echo "make-bases: $image: docker import (Debian $debian_version)"
    id=$(tar -C "$rootfs" --numeric-owner --xattrs --xattrs-include='*' -cf - . \
           | docker import "${docker_args[@]}" - "$image")
  else
    # The same image, its config saying linux/$arch: docker import would
    # call it the daemon's architecture.
    echo "make-bases: $image: docker load of a linux/$arch image (Debian $debian_version)"
    load_args=(--arch "$arch" --tag "$image" --cmd /bin/bash --comment "kiln: debootstrap --variant=minbase --arch=$arch $suite $mirror ($created)"
               --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8)
    for c in "${docker_args[@]}"; do
      [[ $c == "LABEL "* ]] || continue
      kv=${c#LABEL }
      key=${kv%%=*}; value=${kv#*=}; value=${value#\"}; value=${value%\"}
      load_args+=(--label "$key=$value")
    done
    id=$(TMPDIR="$workdir" python3 "$(dirname "$0")/load-rootfs.py" "${load_args[@]}" "$rootfs")
  fi
  docker tag "$image" "$repo:$suite$suffix"
  docker tag "$image" "$repo:$version-$stamp$suffix"
  end=$(now)
  size=$(docker image inspect --format '{{.Size}}' "$image")
  echo "make-bases: $image = $id ($((size / 1024 / 1024)) MiB, linux/$arch; also $repo:$suite$suffix, $repo:$version-$stamp$suffix)"
  echo "make-bases: $image: debootstrap $(secs "$start" "$boot_done") s, import $(secs "$boot_done" "$end") s, total $(secs "$start" "$end") s"

  rm -rf --one-file-system "$workdir"
  workdir=""
done

echo "make-bases: done in $(secs "$total_start" "$(now)") s"
