#!/usr/bin/env bash
# Makes sure a Docker engine answers on DOCKER_HOST (default
# /var/run/docker.sock): if none does, starts Debian's dockerd in the
# background with its default bridge (the Debian mirror must be reachable
# from image builds) and waits for /_ping. Prints the socket path.
set -euo pipefail
sock=${DOCKER_HOST:-unix:///var/run/docker.sock}
sock=${sock#unix://}
ping() { curl -fsS --max-time 2 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; }
if ping; then echo "$sock"; exit 0; fi
[[ $(id -u) -eq 0 ]] || { echo "start-engine: no engine at $sock and not root to start one" >&2; exit 2; }
command -v dockerd >/dev/null || { echo "start-engine: dockerd is not installed (scripts/install-deps.sh)" >&2; exit 2; }
mkdir -p /var/log
setsid dockerd -H "unix://$sock" >/var/log/kiln-dockerd.log 2>&1 </dev/null &
for _ in $(seq 1 300); do
  if ping; then echo "$sock"; exit 0; fi
  sleep 0.1
done
echo "start-engine: dockerd did not answer on $sock within 30 s; see /var/log/kiln-dockerd.log:" >&2
tail -n 20 /var/log/kiln-dockerd.log >&2
exit 2
