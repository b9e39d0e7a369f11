#!/usr/bin/env bash
# A private Docker daemon for integration tests, side by side with any other:
# own data root, exec root, pid file and unix socket; no bridge, no iptables
# (so two never fight over docker0 or NAT rules). Needs root.
#
#   tests/support/dockerd.sh start NAME   # prints the socket path once /_ping answers
#   tests/support/dockerd.sh stop NAME    # stops it (data root is kept: image cache)
#   tests/support/dockerd.sh purge NAME   # stops it and deletes its data root
#   tests/support/dockerd.sh socket NAME  # prints the socket path
# Both are idempotent: start on a running daemon only prints its socket.
# KILN_TEST_ROOT overrides the parent directory (default /var/lib/kiln-test).
# KILN_TEST_DOCKERD_ARGS: more dockerd arguments for `start`, split on white
# space (the remote-engine test adds a TLS listener: -H tcp://… --tlsverify …).
set -euo pipefail

cmd=${1:-}; name=${2:-}
[[ -n "$cmd" && "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "usage: $0 start|stop|purge|socket NAME" >&2; exit 2; }

base=${KILN_TEST_ROOT:-/var/lib/kiln-test}/$name
# exec-root holds containerd's socket: keep the path short (unix sockets max 108 bytes).
exec_root=/run/kiln-test-$name
sock=$exec_root/docker.sock
pidfile=$exec_root/dockerd.pid
log=$base/dockerd.log

ping() { curl -fsS --max-time 2 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; }
running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  if running && ping; then echo "$sock"; return 0; fi
  if running; then stop; fi  # a daemon that does not answer is of no use
  [[ $(id -u) -eq 0 ]] || { echo "dockerd.sh: needs root" >&2; exit 2; }
  command -v dockerd >/dev/null || { echo "dockerd.sh: dockerd not installed" >&2; exit 2; }
  mkdir -p "$base/data" "$exec_root"
  rm -f "$sock" "$pidfile"
  # setsid: the daemon must outlive the test process that started it.
  setsid dockerd \
    --data-root "$base/data" --exec-root "$exec_root" --pidfile "$pidfile" \
    -H "unix://$sock" --bridge=none --iptables=false --ip-masq=false --ip6tables=false \
    ${KILN_TEST_DOCKERD_ARGS:-} \
    >"$log" 2>&1 </dev/null &
  for _ in $(seq 1 300); do
    if ping; then echo "$sock"; return 0; fi
    sleep 0.1
  done
  echo "dockerd.sh: $name did not answer on $sock within 30 s; last log lines:" >&2
  tail -n 20 "$log" >&2 || true
  exit 1
}

stop() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile" "$sock"
}

# dockerd leaves mounts behind (netns/default, overlay layers after a kill):
# only those under this daemon's own roots, deepest first.
unmount_own() {
  awk -v a="$exec_root/" -v b="$base/" 'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/mounts |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  purge) stop; unmount_own; rm -rf "$base" "$exec_root" ;;
  socket) echo "$sock" ;;
  *) echo "usage: $0 start|stop|purge|socket NAME" >&2; exit 2 ;;
esac
