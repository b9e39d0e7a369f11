#!/usr/bin/env bash
# A private CNCF distribution registry (Debian docker-registry) for tests, on
# 127.0.0.1 with a free port, storage in its own directory. No root needed.
#
#   tests/registry/registry.sh start NAME [HTPASSWD]  # prints 127.0.0.1:PORT once /v2/ answers
#   tests/registry/registry.sh stop NAME              # stops it and deletes its storage
#   tests/registry/registry.sh addr NAME              # prints 127.0.0.1:PORT of a running one
#   tests/registry/registry.sh log NAME               # its log (access log included)
# HTPASSWD: a bcrypt htpasswd file; the registry then wants Basic auth.
# start on a running registry only prints its address. KILN_TEST_ROOT
# overrides the parent directory (default ${TMPDIR:-/tmp}/kiln-test-registry).
set -euo pipefail

cmd=${1:-}; name=${2:-}; htpasswd=${3:-}
[[ -n "$cmd" && "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "usage: $0 start|stop|addr|log NAME [HTPASSWD]" >&2; exit 2; }

base=${KILN_TEST_ROOT:-${TMPDIR:-/tmp}/kiln-test-registry}/$name
pidfile=$base/registry.pid
addrfile=$base/addr
log=$base/registry.log

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
answers() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$1/v2/" 2>/dev/null) || return 1
  [[ "$code" == 200 || "$code" == 401 ]]
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$base"
}

start() {
  if running && answers "$(cat "$addrfile")"; then cat "$addrfile"; return 0; fi
  stop
  command -v docker-registry >/dev/null || { echo "registry.sh: docker-registry not installed (apt-get install docker-registry)" >&2; exit 2; }
  mkdir -p "$base/storage"
  local auth=""
  if [[ -n "$htpasswd" ]]; then
    [[ -r "$htpasswd" ]] || { echo "registry.sh: cannot read $htpasswd" >&2; exit 2; }
    cp "$htpasswd" "$base/htpasswd"
    auth=$'auth:\n  htpasswd:\n    realm: kiln-test\n    path: '"$base/htpasswd"
  fi
  for _try in 1 2 3; do
    local port; port=$(free_port)
    cat >"$base/config.yml" <<CFG
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $base/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: kiln-test-$RANDOM$RANDOM
$auth
CFG
    echo "127.0.0.1:$port" >"$addrfile"
    # setsid: the registry outlives the test process that started it.
    setsid docker-registry serve "$base/config.yml" >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
      if answers "127.0.0.1:$port"; then echo "127.0.0.1:$port"; return 0; fi
      running || break
      sleep 0.05
    done
    kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    grep -q "address already in use" "$log" 2>/dev/null && continue
    break
  done
  echo "registry.sh: $name did not answer; last log lines:" >&2
  tail -n 20 "$log" >&2 || true
  exit 1
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  addr) cat "$addrfile" ;;
  log) cat "$log" ;;
  *) echo "usage: $0 start|stop|addr|log NAME [HTPASSWD]" >&2; exit 2 ;;
esac
