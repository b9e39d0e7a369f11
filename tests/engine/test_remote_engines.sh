#!/usr/bin/env bash
# Engines over TCP with TLS and over SSH, end to end with the real `kiln`
# binary and real peers started here (docs/engine.md, "Remote engines"):
#
#   tls: a CA, a server and client certificates made with openssl; a private
#        dockerd (tests/support/dockerd.sh) listening on 127.0.0.1:PORT with
#        --tlsverify; `kiln build` through DOCKER_HOST + DOCKER_TLS_VERIFY +
#        DOCKER_CERT_PATH and through a runner's ca/cert/key (engine and buildx
#        backends); `kiln status` and `kiln audit docker-daemon:` through it; a
#        wrong CA, no client certificate, a client certificate from another
#        CA, plain HTTP to the TLS port and a closed port each exit 2 with one
#        line naming the engine.
#   ssh: a private sshd on 127.0.0.1:PORT (its own host key, config and
#        authorized_keys), a private dockerd reached as
#        ssh://root@127.0.0.1:PORT/<its socket>; `kiln build` through it (engine
#        and buildx), no ssh process or socket left behind; a key that is not
#        authorized, an unknown host key and a host without an engine each exit 2.
#
#   test_remote_engines.sh KILN tls|ssh   exit 0 passed, 1 failed, 77 skipped (not root, a binary missing)
set -uo pipefail

kiln=$(realpath "${1:?usage: test_remote_engines.sh path/to/kiln tls|ssh}")
mode=${2:?usage: test_remote_engines.sh path/to/kiln tls|ssh}
src=$(cd "$(dirname "$0")/../.." && pwd)
data=$src/tests/build/data
dockerd=$src/tests/support/dockerd.sh
name=remote-$mode  # the private dockerd's name

[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for a private dockerd"; exit 77; }
need() { command -v "$1" >/dev/null || { echo "SKIP: $1 not installed ($2)"; exit 77; }; }
need dockerd "apt-get install docker.io"
need curl "apt-get install curl"
[[ -x /bin/busybox ]] || { echo "SKIP: no /bin/busybox (apt-get install busybox-static)"; exit 77; }
if [[ $mode == tls ]]; then
  need openssl "apt-get install openssl"
else
  need ssh "apt-get install openssh-client"
  need ssh-keygen "apt-get install openssh-client"
  [[ -x /usr/sbin/sshd ]] || { echo "SKIP: no /usr/sbin/sshd (apt-get install openssh-server)"; exit 77; }
fi

# The engines are on loopback: no proxy of the environment in between.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
tmp=$(mktemp -d /tmp/kiln-remote-$mode.XXXXXX)
sshd_pid=
cleanup() {
  [[ -n $sshd_pid ]] && { kill "$sshd_pid" 2>/dev/null; wait "$sshd_pid" 2>/dev/null; }
  "$dockerd" purge "$name" >/dev/null 2>&1
  [[ -n ${KILN_TEST_KEEP:-} ]] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

fails=0
pass() { echo "  ok   $*"; }
fail() { echo "  FAIL $*"; fails=$((fails + 1)); }
check() {  # check "what" command...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); r = eval(sys.argv[2]); print(r if not isinstance(r, (dict, list, tuple)) else json.dumps(r))' "$1" "$2"; }
sql() { python3 -c 'import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in row))' "$1/state.db" "$2"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
K() { "$kiln" --data-dir "$data" "$@"; }
# expect_error RC_FILE ERR_FILE "what" PATTERN...: exit 2 and one line holding every pattern.
expect_error() {
  local rc=$1 err=$2 what=$3; shift 3
  check "$what: exit 2 (got $rc)" test "$rc" -eq 2
  local line; line=$(grep -v '^$' "$err" | tail -n 1)
  for p in "$@"; do
    check "$what: the message says '$p'" grep -qF -- "$p" <<<"$line"
  done
  echo "       $line"
}

R118=cuda11.8-debian12-runtime
# A matrix of the build tests' busybox combinations, named NAME, with extra TOML.
mk() {
  sed -e "s/^name = \"bt\"/name = \"$1\"/" "$data/matrices/offline.toml" >"$tmp/$1.toml"
  printf '%s\n' "${2:-}" >>"$tmp/$1.toml"
  echo "$tmp/$1.toml"
}

# busybox bases imported into the private engine through its unix socket.
import_bases() {
  local sock=$1
  mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/tmp" "$tmp/rootfs/etc"
  cp /bin/busybox "$tmp/rootfs/bin/busybox"
  for a in sh echo cat sleep ls true; do ln -sf busybox "$tmp/rootfs/bin/$a"; done
  echo "root:x:0:0:root:/:/bin/sh" >"$tmp/rootfs/etc/passwd"
  tar -C "$tmp/rootfs" -cf "$tmp/busybox.tar" .
  curl -fsS --unix-socket "$sock" -X POST -H 'Content-Type: application/x-tar' --data-binary "@$tmp/busybox.tar" \
    "http://localhost/v1.41/images/create?fromSrc=-&repo=kiln-test/busybox&tag=12" >/dev/null &&
    curl -fsS --unix-socket "$sock" -X POST "http://localhost/v1.41/images/kiln-test/busybox:12/tag?repo=kiln-test/busybox&tag=13" >/dev/null
}

# Docker's "Protect the Docker daemon socket" recipe: a CA, a server
# certificate for 127.0.0.1 (serverAuth), a client certificate (clientAuth).
make_ca() {  # make_ca DIR CN
  mkdir -p "$1"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -subj "/CN=$2" \
    -keyout "$1/ca-key.pem" -out "$1/ca.pem" 2>/dev/null
}
sign() {  # sign CA_DIR KEY CERT CN EXT
  openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$4" -keyout "$2" -out "$tmp/req.csr" 2>/dev/null &&
    printf '%s\n' "$5" >"$tmp/ext.cnf" &&
    openssl x509 -req -days 2 -sha256 -in "$tmp/req.csr" -CA "$1/ca.pem" -CAkey "$1/ca-key.pem" \
      -CAcreateserial -out "$3" -extfile "$tmp/ext.cnf" 2>/dev/null
}

tls_test() {
  echo "== certificates (openssl), a private dockerd with --tlsverify"
  make_ca "$tmp/ca" kiln-test-ca && make_ca "$tmp/other-ca" kiln-test-other-ca || { echo "FAIL: openssl CA"; exit 1; }
  sign "$tmp/ca" "$tmp/server-key.pem" "$tmp/server-cert.pem" 127.0.0.1 \
    $'subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth' || { echo "FAIL: server cert"; exit 1; }
  # DOCKER_CERT_PATH layouts: the right one, and the ways to get it wrong.
  mkdir -p "$tmp/client" "$tmp/wrong-ca" "$tmp/no-cert" "$tmp/foreign-cert" "$tmp/files"
  sign "$tmp/ca" "$tmp/client/key.pem" "$tmp/client/cert.pem" kiln-client 'extendedKeyUsage = clientAuth' &&
    sign "$tmp/other-ca" "$tmp/foreign-cert/key.pem" "$tmp/foreign-cert/cert.pem" kiln-client 'extendedKeyUsage = clientAuth' ||
    { echo "FAIL: client certs"; exit 1; }
  cp "$tmp/ca/ca.pem" "$tmp/client/ca.pem"
  cp "$tmp/other-ca/ca.pem" "$tmp/wrong-ca/ca.pem"; cp "$tmp/client/cert.pem" "$tmp/client/key.pem" "$tmp/wrong-ca/"
  cp "$tmp/ca/ca.pem" "$tmp/no-cert/ca.pem"
  cp "$tmp/ca/ca.pem" "$tmp/foreign-cert/ca.pem"
  # Files under names of their own, for a runner's ca/cert/key.
  cp "$tmp/ca/ca.pem" "$tmp/files/build-farm-ca.crt"
  cp "$tmp/client/cert.pem" "$tmp/files/kiln.crt"; cp "$tmp/client/key.pem" "$tmp/files/kiln.key"
  chmod 0600 "$tmp"/*/key.pem "$tmp/files/kiln.key"

  port=$(free_port)
  "$dockerd" purge "$name" >/dev/null 2>&1
  sock=$(KILN_TEST_DOCKERD_ARGS="-H tcp://127.0.0.1:$port --tlsverify --tlscacert $tmp/ca/ca.pem --tlscert $tmp/server-cert.pem --tlskey $tmp/server-key.pem" \
    "$dockerd" start "$name") || { echo "FAIL: dockerd $name did not start"; exit 1; }
  import_bases "$sock" || { echo "FAIL: import the busybox base"; exit 1; }
  url=tcp://127.0.0.1:$port
  check "curl with the client certificate gets /_ping over TLS" test "$(curl -sS --cacert "$tmp/client/ca.pem" \
    --cert "$tmp/client/cert.pem" --key "$tmp/client/key.pem" "https://127.0.0.1:$port/_ping")" == OK

  echo "== 1. kiln build through DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH"
  m=$(mk rt1)
  (
    export DOCKER_HOST=$url DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$tmp/client
    K build "$m" --state-dir "$tmp/st1" --only "$R118" --format json >"$tmp/b1.json" 2>"$tmp/b1.err"
    echo $? >"$tmp/b1.rc"
    K status "$m" --state-dir "$tmp/st1" --format json >"$tmp/s1.json" 2>"$tmp/s1.err"
    K audit "docker-daemon:kiln.local/rt1:$R118" --format json >"$tmp/a1.json" 2>"$tmp/a1.err"
    echo $? >"$tmp/a1.rc"
    # verify's static check reads the image through the engine: a busybox
    # image fails it (exit 1, a verdict), which is not the engine failing (2).
    K verify "$m" --state-dir "$tmp/st1" --only "$R118" --format json >"$tmp/v1.json" 2>"$tmp/v1.err"
    echo $? >"$tmp/v1.rc"
  )
  check "build over TLS exits 0 ($(tail -n 1 "$tmp/b1.err"))" test "$(cat "$tmp/b1.rc")" -eq 0
  check "the stage was built" test "$(json "$tmp/b1.json" "d['summary']['built']")" -eq 1
  check "the ledger says where it ran: $url" test "$(sql "$tmp/st1" "select distinct engine from builds")" == "$url"
  check "status names the engine" test "$(json "$tmp/s1.json" "[c['build']['engine'] for c in d['combos'] if c.get('build')][0]")" == "$url"
  check "the image is in the TLS engine" \
    curl -fsS -o /dev/null --unix-socket "$sock" "http://localhost/v1.41/images/kiln.local/rt1:$R118/json"
  check "audit docker-daemon: through the TLS engine exits 0 ($(tail -n 1 "$tmp/a1.err"))" test "$(cat "$tmp/a1.rc")" -eq 0
  check "audit read the image from $url" grep -q "engine $url" "$tmp/a1.json"
  check "verify through the TLS engine gives a verdict: exit 1, not 2 ($(tail -n 1 "$tmp/v1.err"))" test "$(cat "$tmp/v1.rc")" -eq 1
  check "verify read the image over TLS (its size in the static check)" test \
    "$(json "$tmp/v1.json" "d['combos'][0]['checks'][0]['detail']['size'] > 0")" == True

  echo "== 2. a runner's engine, ca, cert and key (engine and buildx backends)"
  m=$(mk rt2 "[runners.farm]
engine = \"$url\"
ca = \"$tmp/files/build-farm-ca.crt\"
cert = \"$tmp/files/kiln.crt\"
key = \"$tmp/files/kiln.key\"")
  env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH HOME="$tmp/nohome" \
    "$kiln" --data-dir "$data" build "$m" --state-dir "$tmp/st2" --only "$R118" --format json >"$tmp/b2.json" 2>"$tmp/b2.err"
  rc=$?
  check "build through the runner's TLS files exits 0 ($(tail -n 1 "$tmp/b2.err"))" test $rc -eq 0
  check "ledger: runner farm ran on $url" test "$(sql "$tmp/st2" "select distinct engine from builds")" == "$url"
  K config "$m" --format json >"$tmp/c2.json" 2>/dev/null
  check "kiln config shows the paths (never the contents)" test \
    "$(json "$tmp/c2.json" "[r['key'] for r in d['runners'] if r['name'] == 'farm'][0]")" == "$tmp/files/kiln.key"
  check "no key material in kiln config's output" bash -c "! grep -q 'PRIVATE KEY' '$tmp/c2.json'"

  if docker buildx version >/dev/null 2>&1; then
    m=$(mk rt3 "[runners.farm]
engine = \"$url\"
backend = \"buildx\"
cert_path = \"$tmp/client\"")
    env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
      "$kiln" --data-dir "$data" build "$m" --state-dir "$tmp/st3" --only "$R118" --format json >"$tmp/b3.json" 2>"$tmp/b3.err"
    rc=$?
    check "buildx through the TLS engine exits 0 ($(tail -n 1 "$tmp/b3.err"))" test $rc -eq 0
    check "ledger: buildx on $url" test "$(sql "$tmp/st3" "select distinct engine || ' ' || backend from builds")" == "$url buildx"
    check "no key material in the build log" bash -c "! grep -rq 'PRIVATE KEY' '$tmp/st3'"
  else
    echo "  (docker buildx not installed: the buildx case is not run)"
  fi

  echo "== 3. what goes wrong says so: exit 2, one line naming the engine"
  m=$(mk rt4)
  bad() {  # bad TAG ENV...: kiln build with that environment
    env "${@:2}" "$kiln" --data-dir "$data" build "$m" --state-dir "$tmp/st4" --only "$R118" >/dev/null 2>"$tmp/$1.err"
    echo $?
  }
  rc=$(bad wrongca DOCKER_HOST=$url DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$tmp/wrong-ca)
  expect_error "$rc" "$tmp/wrongca.err" "wrong CA" "cannot reach the engine at $url" "certificate verify failed" "$tmp/wrong-ca/ca.pem"
  rc=$(bad nocert DOCKER_HOST=$url DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$tmp/no-cert)
  expect_error "$rc" "$tmp/nocert.err" "no client certificate" "cannot reach the engine at $url" "requires a client certificate"
  rc=$(bad foreign DOCKER_HOST=$url DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$tmp/foreign-cert)
  expect_error "$rc" "$tmp/foreign.err" "client certificate from another CA" "cannot reach the engine at $url" \
    "refused the client certificate $tmp/foreign-cert/cert.pem"
  rc=$(bad plain -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH DOCKER_HOST=$url)
  expect_error "$rc" "$tmp/plain.err" "plain HTTP to the TLS port" "cannot reach the engine at $url" "speaks TLS" "DOCKER_TLS_VERIFY=1"
  rc=$(bad hostname DOCKER_HOST=tcp://localhost:$port DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$tmp/client)
  expect_error "$rc" "$tmp/hostname.err" "a certificate for another name (IP:127.0.0.1, reached as localhost)" \
    "cannot reach the engine at tcp://localhost:$port" "does not name localhost"
  closed=$(free_port)
  rc=$(bad closed DOCKER_HOST=tcp://127.0.0.1:$closed DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$tmp/client)
  expect_error "$rc" "$tmp/closed.err" "closed port" "cannot reach the engine at tcp://127.0.0.1:$closed" "is dockerd running and listening"
  m=$(mk rt6 "[cache]
apt = \"kiln\"
[runners.farm]
engine = \"$url\"
cert_path = \"$tmp/client\"")
  env -u DOCKER_HOST "$kiln" --data-dir "$data" build "$m" --state-dir "$tmp/st6" --only "$R118" >/dev/null 2>"$tmp/cache.err"
  expect_error $? "$tmp/cache.err" "[cache] apt = \"kiln\" with a remote engine" "this machine's 127.0.0.1" "$url"
  m=$(mk rt5 "[runners.farm]
engine = \"$url\"
ca = \"missing-ca.pem\"")
  env -u DOCKER_HOST "$kiln" --data-dir "$data" build "$m" --state-dir "$tmp/st5" >/dev/null 2>"$tmp/missing.err"
  expect_error $? "$tmp/missing.err" "a runner's ca that does not exist" "rt5.toml:" "$tmp/missing-ca.pem does not exist"
}

ssh_test() {
  echo "== a private sshd on loopback, a private dockerd behind it"
  "$dockerd" purge "$name" >/dev/null 2>&1
  sock=$("$dockerd" start "$name") || { echo "FAIL: dockerd $name did not start"; exit 1; }
  import_bases "$sock" || { echo "FAIL: import the busybox base"; exit 1; }
  ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_key" && ssh-keygen -q -t ed25519 -N '' -f "$tmp/id_kiln" &&
    ssh-keygen -q -t ed25519 -N '' -f "$tmp/id_other" || { echo "FAIL: ssh-keygen"; exit 1; }
  cp "$tmp/id_kiln.pub" "$tmp/authorized_keys"
  port=$(free_port)
  cat >"$tmp/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $tmp/host_key
PidFile $tmp/sshd.pid
AuthorizedKeysFile $tmp/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowStreamLocalForwarding yes
EOF
  mkdir -p /run/sshd  # privilege separation directory
  /usr/sbin/sshd -D -e -f "$tmp/sshd_config" 2>"$tmp/sshd.log" &
  sshd_pid=$!
  for _ in $(seq 1 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break; sleep 0.1; done
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$tmp/host_key.pub")" >"$tmp/known_hosts"
  # Only the test's key, host key file and no user config or agent: the
  # options a user keeps in ~/.ssh/config come through KILN_SSH_OPTS here.
  opts="-F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile=$tmp/known_hosts"
  export KILN_SSH_OPTS="$opts -i $tmp/id_kiln"
  mkdir -p "$tmp/t"
  export TMPDIR=$tmp/t  # where kiln makes its tunnel's directory: checked empty afterwards
  url=ssh://root@127.0.0.1:$port$sock

  echo "== 1. kiln build through ssh://root@127.0.0.1:$port (engine backend, DOCKER_HOST)"
  m=$(mk rs1)
  DOCKER_HOST=$url K build "$m" --state-dir "$tmp/st1" --only "$R118" --format json >"$tmp/b1.json" 2>"$tmp/b1.err"
  rc=$?
  check "build over ssh exits 0 ($(tail -n 1 "$tmp/b1.err"))" test $rc -eq 0
  check "the stage was built" test "$(json "$tmp/b1.json" "d['summary']['built']")" -eq 1
  check "the ledger says where it ran: $url" test "$(sql "$tmp/st1" "select distinct engine from builds")" == "$url"
  check "the image is in the engine behind sshd" \
    curl -fsS -o /dev/null --unix-socket "$sock" "http://localhost/v1.41/images/kiln.local/rs1:$R118/json"
  DOCKER_HOST=$url K build "$m" --state-dir "$tmp/st1" --only "$R118" --format json >"$tmp/b1b.json" 2>/dev/null
  check "a rerun over ssh finds it built (cached)" test "$(json "$tmp/b1b.json" "d['summary']['cached']")" -eq 1
  check "no ssh process left behind" bash -c "! pgrep -f -- '^ssh .*$tmp/id_kiln' >/dev/null"
  check "no tunnel directory left behind" test -z "$(ls -A "$tmp/t")"
  check "sshd saw kiln log in with its key" grep -q "Accepted publickey for root" "$tmp/sshd.log"

  if docker buildx version >/dev/null 2>&1; then
    m=$(mk rs2 "[runners.farm]
engine = \"$url\"
backend = \"buildx\"")
    env -u DOCKER_HOST "$kiln" --data-dir "$data" build "$m" --state-dir "$tmp/st2" --only "$R118" --format json >"$tmp/b2.json" 2>"$tmp/b2.err"
    rc=$?
    check "buildx through the ssh engine exits 0 ($(tail -n 1 "$tmp/b2.err"))" test $rc -eq 0
    check "ledger: buildx on $url" test "$(sql "$tmp/st2" "select distinct engine || ' ' || backend from builds")" == "$url buildx"
  else
    echo "  (docker buildx not installed: the buildx case is not run)"
  fi

  echo "== 2. what goes wrong says so: exit 2, one line naming the engine"
  m=$(mk rs3)
  KILN_SSH_OPTS="$opts -i $tmp/id_other" DOCKER_HOST=$url K build "$m" --state-dir "$tmp/st3" >/dev/null 2>"$tmp/denied.err"
  expect_error $? "$tmp/denied.err" "a key not in authorized_keys" "cannot reach the engine at $url" "ssh: permission denied (publickey)"
  KILN_SSH_OPTS="-F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -i $tmp/id_kiln" \
    DOCKER_HOST=$url K build "$m" --state-dir "$tmp/st3" >/dev/null 2>"$tmp/hostkey.err"
  expect_error $? "$tmp/hostkey.err" "an unknown host key" "cannot reach the engine at $url" "host key verification failed"
  DOCKER_HOST=ssh://root@127.0.0.1:$port/run/kiln-no-docker-here.sock K build "$m" --state-dir "$tmp/st3" >/dev/null 2>"$tmp/nodocker.err"
  expect_error $? "$tmp/nodocker.err" "a host without a Docker engine" "cannot reach the engine at ssh://root@127.0.0.1:$port/run/kiln-no-docker-here.sock" \
    "no Docker engine answers on /run/kiln-no-docker-here.sock"
  closed=$(free_port)
  DOCKER_HOST=ssh://root@127.0.0.1:$closed K build "$m" --state-dir "$tmp/st3" >/dev/null 2>"$tmp/closed.err"
  expect_error $? "$tmp/closed.err" "no sshd on the port" "cannot reach the engine at ssh://root@127.0.0.1:$closed" "connection refused"
  check "no ssh process left behind after the failures" bash -c "! pgrep -f -- '^ssh .*$tmp/id_' >/dev/null"
  check "no tunnel directory left behind after the failures" test -z "$(ls -A "$tmp/t")"
}

case "$mode" in
  tls) tls_test ;;
  ssh) ssh_test ;;
  *) echo "usage: $0 KILN tls|ssh" >&2; exit 2 ;;
esac
echo "$fails failed"
[[ $fails -eq 0 ]]
