#!/usr/bin/env bash
# Installs what kiln needs on a Debian 12 machine, idempotently:
#   build:   g++, CMake, Ninja and the libraries kiln links (all Debian 12)
#   engines: Docker Engine (docker.io), apt-cacher-ng (the package cache
#            kiln starts for [cache] apt = "kiln") and the buildx plugin -- Debian 12
#            has no docker-buildx, so its Debian 13 .deb is unpacked
#            (a static Go binary; nothing else comes from trixie)
# Usage: scripts/install-deps.sh [--build-only]
set -euo pipefail

build_only=false
[[ "${1:-}" == "--build-only" ]] && build_only=true

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

build_packages=(
  g++ cmake ninja-build pkg-config git python3
  python3-venv          # venvs with ensurepip (tests/wheel: wheelhouse.py round trip)
  libtomlplusplus-dev   # matrices and catalog (TOML with exact source positions)
  nlohmann-json3-dev    # plan.json, kiln.json, Engine/registry APIs
  libcli11-dev          # the command line
  libfmt-dev            # messages and tables
  libkainjow-mustache-dev  # Dockerfile templates
  libcurl4-openssl-dev  # Docker Engine API over its unix socket, registry API
  libarchive-dev        # build contexts and image archives, streamed
  libsqlite3-dev        # the state ledger
  libssl-dev            # sha256 of contexts and layers
  catch2                # unit tests
  busybox-static        # a tiny static userland for test images (engine tests)
  help2man              # the man page, made from --help (optional target kiln_man)
  in-toto               # issue 17: the provenance checked with in-toto's stack (tests/sbom/intoto_check.py)
  apt-utils dpkg-dev gnupg  # issue 17: the drift test's local apt repository (apt-ftparchive, dpkg-deb, a signed Release)
)

missing=()
for p in "${build_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
$build_only && exit 0

if ! command -v dockerd >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io debootstrap docker-registry skopeo >/dev/null
fi

# kiln runs its own apt-cacher-ng per build (its own config and cache under
# the state directory); the package's system service is not needed, and
# policy-rc.d keeps it from starting where there is no init system.
if [[ ! -x /usr/sbin/apt-cacher-ng ]]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends apt-cacher-ng >/dev/null
fi

# ssh:// engines are tested against a private sshd on loopback
# (tests/engine/test_remote_engines.sh); only its binary is used, the
# package's system service is not started.
if [[ ! -x /usr/sbin/sshd ]]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
fi

# arm64 images (Grace Hopper, GB200) build here under emulation:
# qemu-user-static registers qemu-aarch64 with binfmt_misc (flag F), so the
# engine runs arm64 RUN steps; scripts/setup-qemu.sh makes sure and checks.
if [[ ! -x /usr/bin/qemu-aarch64-static ]]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    qemu-user-static binfmt-support >/dev/null
fi

# The HTML run report is laid out by a real browser in tests (report_browser).
if ! command -v chromium >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! docker buildx version >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cat >"$tmp/trixie.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
  apt_tmp=(-o Dir::Etc::SourceList="$tmp/trixie.sources" -o Dir::Etc::SourceParts=/dev/null
           -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o APT::Sandbox::User=root)
  as_root apt-get "${apt_tmp[@]}" update -qq
  (cd "$tmp" && as_root apt-get "${apt_tmp[@]}" download docker-buildx >/dev/null)
  as_root dpkg-deb -x "$tmp"/docker-buildx_*.deb "$tmp/root"
  as_root install -D -m 0755 "$tmp/root/usr/libexec/docker/cli-plugins/docker-buildx" \
    /usr/libexec/docker/cli-plugins/docker-buildx
fi
docker buildx version

# Exported Kubernetes Jobs are loaded into the Kubernetes Python client's
# models in tests (tests/export): Debian's python3-kubernetes, and PyYAML
# to read the multi-document YAML.
if ! /usr/bin/python3 -c 'import kubernetes, yaml' 2>/dev/null; then  # Debian's python, not a pyenv one first on PATH
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-kubernetes python3-yaml >/dev/null
fi

# The Slurm runner's one-node test cluster (scripts/start-slurm.sh, the
# verify_slurm_e2e test): slurmctld, slurmd and the Slurm commands from
# slurm-wlm, and munge; the script runs the daemons itself, not as services.
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
