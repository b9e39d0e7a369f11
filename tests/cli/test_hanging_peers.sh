#!/usr/bin/env bash
# Kiln never waits forever on a peer. A fake engine on a
# unix socket (tests/support/hanging_peer.py: a test double for a *broken*
# peer) that (a) accepts and never answers, (b) trickles its headers one byte
# every 3 s; every verb that talks to the engine must exit 2 naming the
# engine, within the limits set through the environment (2 s here). The same
# for a registry that never answers or trickles (audit docker://), a
# credential helper that hangs (its whole process group is killed), and a
# `docker buildx` that goes silent (killed with its process group, the build
# failed). Each run is wrapped in `timeout 60`: a regression fails, it does
# not hang CI. Usage: test_hanging_peers.sh PATH/TO/kiln
set -uo pipefail
kiln=$1
peer=$PWD/tests/support/hanging_peer.py
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}

# start_peer MODE ADDRESS NAME: sets $where to the socket path or port. Not in
# $(...): the peer would hold the substitution's pipe open forever.
where=
start_peer() {
  local ready=$tmp/$3.ready
  python3 "$peer" "$1" "$2" "$ready" >/dev/null 2>"$tmp/$3.peer.log" &
  pids+=($!)
  for _ in $(seq 200); do [ -s "$ready" ] && break; sleep 0.05; done
  where=$(cat "$ready")
}

# gone PIDFILE: every pid listed has exited (a zombie waiting for init
# counts). kill() returns before the kernel has torn a process down: up to 10 s.
gone() {
  local p i
  [ -s "$1" ] || return 1
  for p in $(cat "$1"); do
    for i in $(seq 100); do
      { [ ! -e "/proc/$p" ] || grep -q ') Z' "/proc/$p/stat" 2>/dev/null; } && break
      sleep 0.1
    done
    [ ! -e "/proc/$p" ] || grep -q ') Z' "/proc/$p/stat" 2>/dev/null || return 1
  done
}

export KILN_ENGINE_CONNECT_TIMEOUT=2 KILN_ENGINE_TIMEOUT=2 KILN_ENGINE_IDLE_TIMEOUT=2
export KILN_REGISTRY_CONNECT_TIMEOUT=2 KILN_REGISTRY_TIMEOUT=2 KILN_REGISTRY_IDLE_TIMEOUT=2
export KILN_CREDENTIAL_HELPER_TIMEOUT=2 KILN_LOCK_WAIT=0

# expect2 NAME COMMAND...: exits 2 (not 124: hung) and names the engine.
expect2() {
  local name=$1; shift
  timeout 60 "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  check "$name: exit 2 (got $rc)" test "$rc" -eq 2
  check "$name: names the endpoint" grep -q "$want" "$tmp/err"
  [ "$rc" -eq 2 ] && grep -q "$want" "$tmp/err" || sed 's/^/    /' "$tmp/err" | tail -5
}

# --- engines: silent, and trickling headers ------------------------------------
for mode in silent trickle; do
  start_peer "$mode" "unix:$tmp/$mode.sock" "engine-$mode"
  sock=$where
  export DOCKER_HOST=unix://$sock
  want="engine unix://$sock"
  st=$tmp/state-$mode
  expect2 "$mode engine: build" "$kiln" build --state-dir "$st"
  expect2 "$mode engine: verify" "$kiln" verify --state-dir "$st"
  expect2 "$mode engine: promote" "$kiln" promote --state-dir "$st"
  expect2 "$mode engine: run" "$kiln" run --state-dir "$st"
  expect2 "$mode engine: audit (engine image)" "$kiln" audit kiln-hang-test/none:1
  expect2 "$mode engine: check-driver (engine image)" "$kiln" check-driver --driver 580.0 kiln-hang-test/none:1
  check "$mode engine: the limit's variable is named" grep -q "KILN_ENGINE_" "$tmp/err"
done
unset DOCKER_HOST

# --- registries: silent, and trickling headers ---------------------------------
for mode in silent trickle; do
  start_peer "$mode" tcp:0 "registry-$mode"
  port=$where
  want="registry http://127.0.0.1:$port"
  expect2 "$mode registry: audit docker://" "$kiln" audit "docker://127.0.0.1:$port/kiln/x:1"
  check "$mode registry: the limit's variable is named" grep -q "KILN_REGISTRY_TIMEOUT" "$tmp/err"
  expect2 "$mode registry: check-driver docker://" "$kiln" check-driver --driver 580.0 "docker://127.0.0.1:$port/kiln/x:1"
done

# --- a credential helper that never answers ------------------------------------
# Its child (a sleep) must die with it: the limit ends the process group.
mkdir -p "$tmp/bin" "$tmp/docker-config"
cat >"$tmp/bin/docker-credential-kilnhang" <<SH
#!/bin/sh
sleep 300 &
echo \$! >>"$tmp/helper-children"
wait
SH
chmod +x "$tmp/bin/docker-credential-kilnhang"
start_peer auth tcp:0 registry-auth  # asks for credentials: the helper is consulted
echo "{\"credHelpers\": {\"127.0.0.1:$where\": \"kilnhang\"}}" >"$tmp/docker-config/config.json"
want="docker-credential-kilnhang did not answer within 2 s"
DOCKER_CONFIG=$tmp/docker-config PATH=$tmp/bin:$PATH \
  expect2 "hanging credential helper: audit docker://" "$kiln" audit "docker://127.0.0.1:$where/kiln/x:1"
check "hanging credential helper: its child was killed with it" gone "$tmp/helper-children"

# --- docker buildx that goes silent --------------------------------------------
# The engine answers ping and inspects (pingable); `docker` is a fake that
# starts a child and says nothing. Each stage's buildx is killed after the
# idle limit with its child, and the build stops with exit 2 (the builder,
# not the Dockerfile, failed) instead of hanging.
start_peer pingable "unix:$tmp/pingable.sock" engine-pingable
sock=$where
cat >"$tmp/bin/docker" <<SH
#!/bin/sh
sleep 300 &
echo \$! >>"$tmp/buildx-children"
wait
SH
chmod +x "$tmp/bin/docker"
# The runner names the engine, so the build goes through buildx there.
sed "s|^backend = \"engine\"|backend = \"buildx\"\nengine = \"unix://$sock\"|" matrices/offline.toml >"$tmp/buildx.toml"
PATH=$tmp/bin:$PATH timeout 60 "$kiln" build "$tmp/buildx.toml" --state-dir "$tmp/state-buildx" \
  --only cuda11.8-debian12-runtime >"$tmp/out" 2>"$tmp/err"
rc=$?
check "silent buildx: the build stopped, not hung (exit 2, got $rc)" test "$rc" -eq 2
check "silent buildx: says why and names the engine" grep -q "engine unix://$sock: docker buildx printed nothing for 2 s" "$tmp/err"
check "silent buildx: its child was killed with it" gone "$tmp/buildx-children"
[ "$rc" -eq 2 ] || sed 's/^/    /' "$tmp/err" | tail -5

echo "hanging peers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
