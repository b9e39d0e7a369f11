# Sourced by scripts/gpu-e2e.sh and scripts/gpu-torch-e2e.sh, before Podman
# starts (Podman reads registries.conf once): docker-registry from Debian 12's
# .deb (.kilnpod/) serving plain HTTP on 127.0.0.1:5000, filesystem storage
# under /tmp, and registries.conf marking it insecure for Podman (its compat
# push API takes no tlsVerify from kiln). Needs ROOT, OUT, KILN_WORK.
# registry_check (after log() exists) says whether it answers.
REG_ADDR=127.0.0.1:5000
REG_DIR=${KILN_REGISTRY_DIR:-/tmp/kiln-registry}
DEB=$(ls "${KILN_DEBS:-$ROOT/.kilnpod}"/docker-registry_*.deb 2>/dev/null | head -1)
[ -n "$DEB" ] || { echo "gpu-e2e: no docker-registry_*.deb in ${KILN_DEBS:-$ROOT/.kilnpod} (apt-get download docker-registry)" >&2; exit 2; }
RBIN=$KILN_WORK/registry
mkdir -p "$RBIN" "$REG_DIR" && dpkg -x "$DEB" "$RBIN"
cat >"$KILN_WORK/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REG_DIR
  delete:
    enabled: true
http:
  addr: $REG_ADDR
EOF
setsid "$RBIN/usr/bin/docker-registry" serve "$KILN_WORK/registry.yml" >"$OUT/registry.log" 2>&1 </dev/null &
mkdir -p /etc/containers/registries.conf.d
REGCONF="[[registry]]
location = \"$REG_ADDR\"
insecure = true"
if [ -e /etc/containers/registries.conf ]; then
  printf '%s\n' "$REGCONF" >/etc/containers/registries.conf.d/50-kiln-local.conf
else
  printf 'unqualified-search-registries = []\n%s\n' "$REGCONF" >/etc/containers/registries.conf
fi

registry_check() {
  curl -sf "http://$REG_ADDR/v2/" >/dev/null || { sleep 1; curl -sf "http://$REG_ADDR/v2/" >/dev/null; } ||
    die "docker-registry does not answer on $REG_ADDR (see $OUT/registry.log)"
  log "docker-registry $("$RBIN/usr/bin/docker-registry" --version 2>/dev/null | awk '{print $NF}') on http://$REG_ADDR, storage $REG_DIR"
}
