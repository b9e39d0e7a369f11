#!/usr/bin/env bash
# PyTorch from any index, on the real engine, offline.
#
# The "torch" here is a stand-in: two small pure-Python distributions written
# by make_standins.py (Kiln.Demo_Core 1.0+cu130 -- a local version tag like
# torch's -- and kiln-demo-app 2.0, which depends on it and has a console
# script). They are installed into a venv, repacked by scripts/wheelhouse.py
# into a wheelhouse (RECORDs verified, a PEP 503 simple index beside), and
# installed from it into a fresh venv. Then kiln builds images on Debian 12
# (python3 from the Debian mirror through the recipe's apt fallback) with
# the matrix's [pip] packages = [...] override naming the stand-ins:
#   (a) find_links = a local wheelhouse directory + no_index (air-gapped):
#       bind-mounted, no layer holds a wheel;
#   (b) index_url = the wheelhouse's simple index over `python3 -m http.server`;
#   (c) a private index demanding Basic auth, credentials in a netrc given to
#       the build as a secret from an environment variable: the password
#       appears in none of docker history, docker save, kiln's log, the
#       rendered Dockerfile, the argv of kiln and of what kiln ran.
# The template set is the real pip partial without the CUDA apt step
# (tests/wheel/data/templates), so each build takes seconds.
# Usage: test_wheel.sh KILN. Exit 77 (skipped) without an engine or buildx.
set -uo pipefail
kiln=$(realpath "$1")
src=$(pwd)
here=$src/tests/wheel
T=$(mktemp -d /tmp/kiln-wheel-test.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  docker image rm -f i-wheel-test/debian-python:12 >/dev/null 2>&1
  for i in a b c; do docker image rm -f "kiln.local/i-wheel-$i:pytorch2.6-cuda11.8-debian12-runtime" >/dev/null 2>&1; done
  [[ -n ${KILN_TEST_KEEP:-} ]] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
passed=0 failed=0
check() { local n=$1; shift; if "$@"; then passed=$((passed + 1)); echo "ok: $n"; else failed=$((failed + 1)); echo "FAIL: $n"; fi; }
finish() { echo "$passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit $?; }

python3 -c 'import venv, ensurepip' 2>/dev/null || { echo "skip: python3 without venv/ensurepip"; exit 77; }

# --- 1. a wheelhouse from installed distributions ---------------------------
python3 "$here/make_standins.py" "$T/src-wheels"
python3 -m venv "$T/v1" && "$T/v1/bin/pip" install -q --no-index --find-links "$T/src-wheels" kiln-demo-app
check "stand-ins installed into a venv" "$T/v1/bin/kiln-demo"
python3 scripts/wheelhouse.py --site "$T/v1" --out "$T/W" --simple-index "$T/W/simple" --check kiln-demo-app >"$T/wh.log" 2>&1
check "wheelhouse.py packs and checks (exit 0)" test $? -eq 0
cat "$T/wh.log"
check "two wheels: the closure (markers and extras not taken), no pip/setuptools" \
  bash -c "[[ \$(ls '$T/W' | grep -c '\.whl$') -eq 2 ]] && grep -q 'wheelhouse: 2 wheels' '$T/wh.log'"
check "a line per wheel and a summary with bytes and seconds" grep -Eq '^wheelhouse: 2 wheels, [0-9]+ bytes .* [0-9.]+ s' "$T/wh.log"
core=$(ls "$T"/W/Kiln_Demo_Core-1.0+cu130-py3-none-any.whl 2>/dev/null)
app=$(ls "$T"/W/kiln_demo_app-2.0-py3-none-any.whl 2>/dev/null)
check "wheel names: normalized name, local version, WHEEL's tag" test -n "$core" -a -n "$app"
members() { python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$1"; }
has() { members "$2" | grep -xF "$1" >/dev/null; }  # MEMBER WHEEL
export -f members has
check "namespace dir split by RECORD: each wheel holds only its own kilnns/ file" \
  bash -c "has kilnns/core_part.py '$core' && ! has kilnns/app_part.py '$core' && has kilnns/app_part.py '$app' && ! has kilnns/core_part.py '$app'"
check "script outside site-packages goes to .data/scripts with its shebang back to #!python" \
  bash -c "python3 -c 'import sys,zipfile; print(zipfile.ZipFile(sys.argv[1]).read(\"Kiln_Demo_Core-1.0+cu130.data/scripts/kiln-demo-raw\").decode().splitlines()[0])' '$core' | grep -qx '#!python'"
check "data-scheme file kept (.data/data/share/...)" has Kiln_Demo_Core-1.0+cu130.data/data/share/kiln-demo/notice.txt "$core"
check "no INSTALLER, REQUESTED, direct_url.json, __pycache__, entry-point wrapper" \
  bash -c "! { members '$core'; members '$app'; } | grep -E 'INSTALLER|REQUESTED|direct_url|__pycache__|scripts/kiln-demo\$'"
check "simple index: per project page with #sha256= of the file" \
  bash -c "grep -q \"#sha256=\$(sha256sum '$core' | cut -d' ' -f1)\" '$T/W/simple/kiln-demo-core/index.html'"
# A tampered wheel is caught by --check.
cp -r "$T/W" "$T/Wbad"
python3 - "$T/Wbad/kiln_demo_app-2.0-py3-none-any.whl" <<'PY'
import sys, zipfile
p = sys.argv[1]
src = zipfile.ZipFile(p); items = [(i, src.read(i)) for i in src.infolist()]; src.close()
with zipfile.ZipFile(p, "w") as z:
    for i, d in items:
        z.writestr(i, d.replace(b"PART = 'app'", b"PART = 'bad'"))
PY
python3 scripts/wheelhouse.py --check --out "$T/Wbad" >"$T/bad.log" 2>&1
check "--check finds a member whose hash differs from RECORD (exit 1)" bash -c "[[ $? -eq 1 ]] && grep -q 'kilnns/app_part.py: sha256 differs' '$T/bad.log'"

python3 -m venv "$T/v2"
"$T/v2/bin/pip" install -q --no-index --find-links "$T/W" kiln-demo-app "kiln.demo-core==1.0+cu130"
check "pip install --no-index --find-links W (pinned with +cu130) into a fresh venv" test $? -eq 0
check "entry point runs from the repacked wheels" bash -c "'$T/v2/bin/kiln-demo' | grep -qx 'kiln-demo core-1.0+cu130 hello from the wheelhouse core app'"
check "repacked plain script runs" bash -c "'$T/v2/bin/kiln-demo-raw' | grep -qx 'raw core-1.0+cu130'"
check "data file installed under the prefix" test -f "$T/v2/share/kiln-demo/notice.txt"

# --- 2. kiln builds through the recipe's [pip] options -----------------------
sock=$(scripts/start-engine.sh 2>/dev/null) || { echo "skip: no engine"; finish; }
export DOCKER_HOST=unix://$sock
docker buildx version >/dev/null 2>&1 || { echo "skip: no docker buildx"; finish; }
scripts/make-bases.sh 12 >"$T/bases.log" 2>&1 || { tail -20 "$T/bases.log"; echo "FAIL: make-bases 12"; exit 1; }

data=$T/data
mkdir -p "$data/templates"
ln -s "$src/recipes" "$data/recipes"
ln -s "$src/templates/partials" "$data/templates/partials"
cp "$here/data/templates/Dockerfile.mustache" "$data/templates/"
mkdir -p "$T/m" && cp -r "$T/W" "$T/m/wheels"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
matrix() {  # NAME, then [pip] lines
  local name=$1; shift
  {
    printf 'name = "%s"\n[axes]\npytorch = ["2.6"]\ncuda = ["11.8"]\nos = ["debian12"]\nflavor = ["runtime"]\n' "$name"
    printf '[[base]]\nos = "debian12"\nimage = "%s"\n' "${BASE:-kiln/debian:12}"
    printf '[runners.bx]\nengine = "unix://%s"\nbackend = "buildx"\n' "$sock"
    printf '[pip]\npackages = ["kiln-demo-app==2.0", "kiln.demo-core==1.0+cu130"]\n'
    printf '%s\n' "$@"
  } >"$T/m/$name.toml"
}
build() {  # NAME [kiln args...]: builds, log in $T/NAME.out
  local name=$1; shift
  "$kiln" --data-dir "$data" build "$T/m/$name.toml" --state-dir "$T/state-$name" "$@" >"$T/$name.out" 2>&1
}
runs() {  # IMAGE: the entry point inside the image, with no network
  docker run --rm --network none "$1" kiln-demo 2>&1 | grep -qx 'kiln-demo core-1.0+cu130 hello from the wheelhouse core app'
}

# (a) air-gapped: a local wheelhouse, no index.
matrix i-wheel-a 'find_links = ["wheels"]' 'no_index = true'
"$kiln" --data-dir "$data" generate "$T/m/i-wheel-a.toml" -o "$T/gen-a" >/dev/null 2>&1
df=$T/gen-a/pytorch2.6-cuda11.8-debian12-runtime/Dockerfile
check "(a) Dockerfile says where the wheels come from" grep -q '^#   wheelhouse wheels (the matrix' "$df"
check "(a) bind mount, --no-index, --find-links the mount, torch-like pin, constraints" \
  bash -c "grep -q -- '--mount=type=bind,source=kiln-wheels/1,target=/tmp/kiln-wheels/1' '$df' && grep -q -- '--no-index' '$df' && grep -q -- '--find-links /tmp/kiln-wheels/1' '$df' && grep -q '\"kiln.demo-core==1.0+cu130\"' '$df' && grep -q \"'nvidia-cudnn-cu11==9.1.0.70'\" '$df' && ! grep -q -- '--index-url' '$df'"
# --no-cache: BuildKit's own cache (shared dockerd, earlier runs) must not
# hide the steps the checks read from the log.
build i-wheel-a --no-cache
check "(a) kiln build exit 0" test $? -eq 0 || cat "$T/i-wheel-a.out"
img=kiln.local/i-wheel-a:pytorch2.6-cuda11.8-debian12-runtime
check "(a) the image runs the stand-in's entry point" runs "$img"
check "(a) no wheel in any layer (bind mount, not COPY)" bash -c "! docker save '$img' | grep -aq 'kiln_demo_app-2.0-py3-none-any.whl'"
check "(a) python3 came from apt (the base has none)" grep -q '^+ apt-get update' "$T/state-i-wheel-a/logs/i-wheel-a/pytorch2.6-cuda11.8-debian12-runtime.log"
build i-wheel-a --format json
check "(a) rerun: cached (wheelhouse listing in the input hash)" grep -q '"cached": 1' "$T/i-wheel-a.out"
# Docker's classic builder (backend "engine") does not read RUN --mount: refused, exit 2.
sed 's/backend = "buildx"/backend = "engine"/; s/^name = "i-wheel-a"/name = "i-wheel-a2"/' "$T/m/i-wheel-a.toml" >"$T/m/i-wheel-a2.toml"
build i-wheel-a2
check "(a) wheelhouse on Docker's classic builder: exit 2, says why" bash -c "[[ $? -eq 2 ]] && grep -q 'does not read; use a runner with backend = \"buildx\"' '$T/i-wheel-a2.out'"
touch -d '2020-01-01' "$T/m/wheels/kiln_demo_app-2.0-py3-none-any.whl"
build i-wheel-a --format json
check "(a) a changed wheelhouse file rebuilds" grep -q '"built": 1' "$T/i-wheel-a.out"

# (b) and (c) build on a base that has Python with venv/ensurepip, as the GPU
# host's imported base does: the pip step must not run apt there.
pybase=i-wheel-test/debian-python:12
printf 'FROM kiln/debian:12\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv && rm -rf /var/lib/apt/lists/*\n' |
  docker build -q --network host -t "$pybase" - >"$T/pybase.log" 2>&1 || { cat "$T/pybase.log"; echo "FAIL: python base"; exit 1; }
export BASE=$pybase
no_apt() { ! grep -q '^+ apt-get' "$T/state-$1/logs/$1/pytorch2.6-cuda11.8-debian12-runtime.log" && grep -q '^+ python3 -m venv /opt/venv' "$T/state-$1/logs/$1/pytorch2.6-cuda11.8-debian12-runtime.log"; }

# (b) an index over HTTP (python3 -m http.server), on a free port.
port=$(free_port)
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$T/W" >"$T/http.log" 2>&1 &
pids+=($!)
status() { python3 -c 'import sys, urllib.request, urllib.error
try: print(urllib.request.build_opener(urllib.request.ProxyHandler({})).open(sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as e: print(e.code)
except OSError: print(0)' "$1"; }
for _ in $(seq 50); do [[ $(status "http://127.0.0.1:$port/simple/") == 200 ]] && break; sleep 0.1; done
matrix i-wheel-b "index_url = \"http://127.0.0.1:$port/simple\""
build i-wheel-b --no-cache
check "(b) kiln build from an index_url exit 0" test $? -eq 0 || cat "$T/i-wheel-b.out"
check "(b) the image runs the stand-in's entry point" runs kiln.local/i-wheel-b:pytorch2.6-cuda11.8-debian12-runtime
check "(b) pip fetched from the index" grep -q 'GET /simple/kiln-demo-core/' "$T/http.log"
check "(b) base with Python and ensurepip: no apt in the pip step" no_apt i-wheel-b

# (c) a private index: Basic auth, the netrc through a build secret.
token="kiln-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$token" >"$T/password"
python3 "$here/netrc_server.py" "$T/W" "$T/password" "$T/port" 2>"$T/private.log" &
pids+=($!)
for _ in $(seq 50); do [[ -s $T/port ]] && break; sleep 0.1; done
pport=$(cat "$T/port")
check "(c) the private index refuses a request without credentials (401)" \
  test "$(status "http://127.0.0.1:$pport/simple/")" = 401
matrix i-wheel-c "index_url = \"http://127.0.0.1:$pport/simple\"" 'secret = "kiln-pip-netrc"' 'secret_env = "KILN_TEST_NETRC"'
# kiln's argv and everything it runs: a docker wrapper first on PATH logs argv.
mkdir -p "$T/bin"
printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>%s/argv.log\nexec %s "$@"\n' "$T" "$(command -v docker)" >"$T/bin/docker"
chmod +x "$T/bin/docker"
unset KILN_TEST_NETRC
build i-wheel-c
check "(c) secret's environment variable unset: exit 2, named" bash -c "[[ $? -eq 2 ]] && grep -q 'KILN_TEST_NETRC, which is not set' '$T/i-wheel-c.out'"
export KILN_TEST_NETRC="machine 127.0.0.1 login kiln password $token"
PATH="$T/bin:$PATH" bash -c 'echo "$0 $*" >>'"$T"'/argv.log; exec "$0" "$@"' "$kiln" --data-dir "$data" build "$T/m/i-wheel-c.toml" --state-dir "$T/state-i-wheel-c" --no-cache >"$T/i-wheel-c.out" 2>&1
check "(c) kiln build through the secret exit 0" test $? -eq 0 || cat "$T/i-wheel-c.out"
imgc=kiln.local/i-wheel-c:pytorch2.6-cuda11.8-debian12-runtime
check "(c) the image runs the stand-in's entry point" runs "$imgc"
check "(c) base with Python and ensurepip: no apt in the pip step" no_apt i-wheel-c
check "(c) the index saw authorized requests" grep -q '"GET /simple/kiln-demo-core/ HTTP/1.1" 200' "$T/private.log"
check "(c) buildx got the secret by its source's name" grep -q -- '--secret id=kiln-pip-netrc,env=KILN_TEST_NETRC' "$T/argv.log"
docker history --no-trunc "$imgc" >"$T/history.txt"
docker save "$imgc" >"$T/image.tar"
for what in "docker history --no-trunc:$T/history.txt" "docker save tar bytes:$T/image.tar" \
            "kiln's build log:$T/state-i-wheel-c/logs/i-wheel-c/pytorch2.6-cuda11.8-debian12-runtime.log" \
            "kiln's output:$T/i-wheel-c.out" \
            "the rendered Dockerfile:$T/state-i-wheel-c/contexts/i-wheel-c/pytorch2.6-cuda11.8-debian12-runtime/Dockerfile" \
            "argv of kiln and of docker buildx:$T/argv.log"; do
  f=${what#*:}
  check "(c) the password is not in $(echo "${what%%:*}") ($(wc -c <"$f") bytes)" bash -c "[[ -s '$f' ]] && ! grep -aqF '$token' '$f'"
done
rm -f "$T/image.tar"
# The engine backend cannot pass a secret: refused before building, exit 2.
sed -i 's/backend = "buildx"/backend = "engine"/' "$T/m/i-wheel-c.toml"
build i-wheel-c
check "(c) engine backend with a secret: exit 2, says why" bash -c "[[ $? -eq 2 ]] && grep -q 'cannot pass a secret' '$T/i-wheel-c.out'"
check "(c) ... and built nothing" bash -c "! grep -q 'built' '$T/i-wheel-c.out' || grep -q 'error' '$T/i-wheel-c.out'"

finish
