#!/usr/bin/env bash
# Makes sure an OCI registry answers on 127.0.0.1:${KILN_REGISTRY_PORT:-5000}:
# if none does, starts Debian's docker-registry (CNCF distribution) there,
# storing under /var/lib/kiln-registry. Prints host:port.
set -euo pipefail
port=${KILN_REGISTRY_PORT:-5000}
addr=127.0.0.1:$port
up() { curl -fsS --max-time 2 "http://$addr/v2/" >/dev/null 2>&1; }
if up; then echo "$addr"; exit 0; fi
command -v docker-registry >/dev/null || { echo "start-registry: docker-registry is not installed (scripts/install-deps.sh)" >&2; exit 2; }
root=${KILN_REGISTRY_ROOT:-/var/lib/kiln-registry}
mkdir -p "$root/data"
cat >"$root/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $root/data
  delete:
    enabled: true
http:
  addr: $addr
YML
setsid docker-registry serve "$root/config.yml" >"$root/registry.log" 2>&1 </dev/null &
for _ in $(seq 1 100); do
  if up; then echo "$addr"; exit 0; fi
  sleep 0.1
done
echo "start-registry: no answer on $addr; see $root/registry.log" >&2
tail -n 20 "$root/registry.log" >&2
exit 2
