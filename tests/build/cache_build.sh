#!/usr/bin/env bash
# The package cache end to end: the offline matrix's CUDA 11.8 runtime image built
# for real through the apt-cacher-ng kiln starts ([cache] apt = "kiln"), on
# the machine's engine, with both backends. Checks that the second build
# was served from the cache (apt-cacher-ng's log: the .debs sent without a
# fetch from the mirror), that nothing of the cache reached the image (no
# proxy setting in a layer, the config or an ENV; no apt lists or .debs;
# no pip cache), and image sizes: `kiln build` reports them, [budget] fails
# the static check of an image over it and passes one under it.
# Usage: cache_build.sh KILN. Exit 77 (skip): not root, or no apt-cacher-ng.
set -uo pipefail
kiln=$(realpath "$1")
[[ $(id -u) -eq 0 ]] || { echo "cache_build: needs root (engine, bases)"; exit 77; }
[[ -x /usr/sbin/apt-cacher-ng ]] || { echo "cache_build: apt-cacher-ng missing (scripts/install-deps.sh)"; exit 77; }
work=$(mktemp -d /var/tmp/kiln-cache-test.XXXXXX)
name=cache-test-$$
cleanup() {
  # Every image this test built (each --no-cache build leaves the previous
  # one dangling), on an engine other tests share.
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^kiln.local/$name:" | xargs -r docker rmi -f >/dev/null 2>&1
  sort -u "$work/built-ids" 2>/dev/null | xargs -r docker rmi -f >/dev/null 2>&1
  [[ ${KILN_TEST_KEEP:-} == 1 ]] && { echo "kept $work"; return; }
  rm -rf "$work"
}
trap cleanup EXIT
passed=0 failed=0
check() { local n=$1; shift; if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $n"; fi; }
finish() { echo "$passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit $?; }

sock=$(scripts/start-engine.sh) || { echo "cache_build: no engine"; echo "0 passed, 1 failed"; exit 1; }
export DOCKER_HOST=unix://$sock
scripts/make-bases.sh 12 >"$work/bases.log" 2>&1 || { tail -20 "$work/bases.log"; echo "0 passed, 1 failed"; exit 1; }

combo=cuda11.8-debian12-runtime
img=kiln.local/$name:$combo
# The offline matrix under its own name, through kiln's apt cache, a
# runtime budget of 100 MB (the image is ~790 MB) and a buildx runner.
matrix() {  # BUDGET
  sed -e "s/^name = \"offline\"/name = \"$name\"/" -e "s|^\[runners.local\]|[runners.local]\nengine = \"unix://$sock\"|" matrices/offline.toml
  printf '\n[cache]\napt = "kiln"\n\n[budget]\nruntime = "%s"\n' "$1"
  printf '\n[runners.bx]\nengine = "unix://%s"\nbackend = "buildx"\ngpu = "none"\n' "$sock"
}
matrix 100MB >"$work/m.toml"
state=$work/state
acng_log=$state/apt-cache/log/apt-cacher.log
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"; }

# --- 1. first build (engine backend): through the cache, sizes reported -----
"$kiln" build "$work/m.toml" --builder local --only "$combo" --no-cache --state-dir "$state" --format json >"$work/b1.json" 2>"$work/b1.err"
check "first build exit 0" test $? -eq 0
check "built" json "$work/b1.json" "j['combos'][0]['outcome'] == 'built'"
check "size and largest layers in the JSON" json "$work/b1.json" \
  "j['combos'][0]['size'] > 100e6 and j['combos'][0]['largest_layers'][0]['size'] > 100e6 and 'apt-get' in j['combos'][0]['largest_layers'][0]['created_by']"
port=$(cat "$state/apt-cache/port")
built_id() { docker image inspect "$img" --format '{{.Id}}' >>"$work/built-ids" 2>/dev/null; }
built_id
check "apt-cacher-ng logged the .debs of the first build" grep -q '|O|.*libcudart11.0_.*\.deb$' "$acng_log"
check "apt-cacher-ng stopped after the build" bash -c "! (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null"
lines=$(wc -l <"$acng_log")

# --- 2. second build, cold (--no-cache): every .deb from the cache ----------
"$kiln" build "$work/m.toml" --builder local --only "$combo" --no-cache --state-dir "$state" >"$work/b2.txt" 2>&1
check "second build exit 0" test $? -eq 0
built_id
check "table shows the image size and its largest layer" grep -qE '^ +[0-9.]+ MB +RUN set -eux' "$work/b2.txt"
tail -n +"$((lines + 1))" "$acng_log" | grep '\.deb$' >"$work/second.log"
check "second build fetched its .debs through the cache" grep -q '|O|.*libcublas11_.*\.deb$' "$work/second.log"
check "and none of them from the mirror (cache hits)" bash -c "! grep -q '|I|' '$work/second.log'"
check "same port reused" test "$(cat "$state/apt-cache/port")" = "$port"

# --- 3. nothing from the cache in the image -------------------------------
docker image inspect "$img" --format '{{json .Config.Env}}' >"$work/env.json"
check "no proxy in the image's environment" bash -c "! grep -qiE 'proxy|127\.0\.0\.1:$port' '$work/env.json'"
docker history --no-trunc --format '{{.CreatedBy}}' "$img" >"$work/history.txt"
# The classic builder prefixes each RUN after an ARG with the build arguments
# in scope ("|2 APT_PROXY=http://... DEBIAN_MIRROR=... /bin/sh -c CMD"): the
# address may be there, never in a command, an ENV or a written file.
check "history: the proxy only among a RUN's build arguments" awk -v a="127.0.0.1:$port" '
  index($0, a) { n++; if (substr($0, 1, 1) != "|" || index(substr($0, index($0, "/bin/sh -c")), a)) bad++ }
  END { exit !(n > 0 && bad == 0) }' "$work/history.txt"
check "history: no ENV or file names a proxy" bash -c "! grep -iE 'ENV.*proxy|apt.conf.d' '$work/history.txt'"
mkdir -p "$work/save" && docker save "$img" | tar -x -C "$work/save"
: >"$work/files.txt"
for layer in "$work"/save/*/layer.tar; do tar -tf "$layer" >>"$work/files.txt"; done
check "layers listed" test -s "$work/files.txt"
check "no apt lists in any layer" bash -c "! grep -E '^var/lib/apt/lists/[^/]+(Release|Packages|Sources)' '$work/files.txt'"
check "no .deb in any layer" bash -c "! grep -E '^var/cache/apt/archives/.*\.deb$' '$work/files.txt'"
check "no pip cache in any layer" bash -c "! grep -E '^root/\.cache/pip/' '$work/files.txt'"
for layer in "$work"/save/*/layer.tar; do tar -x -C "$work/save" -f "$layer" --wildcards 'etc/apt/*' 2>/dev/null; done
check "no apt proxy setting in any layer's /etc/apt" bash -c "! grep -rqiE 'Acquire::http::Proxy|127\.0\.0\.1:$port' '$work/save/etc/apt'"

# --- 4. the buildx backend: the same cache, the same cleanliness ------------
lines=$(wc -l <"$acng_log")
"$kiln" build "$work/m.toml" --builder bx --only "$combo" --no-cache --state-dir "$state" --format json >"$work/b3.json" 2>"$work/b3.err"
check "buildx build exit 0" test $? -eq 0
built_id
check "buildx: built" json "$work/b3.json" "j['combos'][0]['outcome'] == 'built' and j['combos'][0]['size'] > 100e6"
tail -n +"$((lines + 1))" "$acng_log" | grep '\.deb$' >"$work/third.log"
check "buildx: .debs served from the cache" grep -q '|O|.*libcublaslt11_.*\.deb$' "$work/third.log"
check "buildx: none from the mirror" bash -c "! grep -q '|I|' '$work/third.log'"
docker image inspect "$img" --format '{{json .Config.Env}}' >"$work/env3.json"
check "buildx: no proxy in the environment" bash -c "! grep -qiE 'proxy|127\.0\.0\.1:$port' '$work/env3.json'"
check "buildx: no .deb or apt lists in the image" bash -c \
  "! docker run --rm --network none --entrypoint sh '$img' -c 'ls /var/cache/apt/archives/*.deb /var/lib/apt/lists/*Packages* /root/.cache/pip 2>/dev/null' | grep -q ."
check "buildx: no proxy in /etc/apt" bash -c "! docker run --rm --network none --entrypoint sh '$img' -c 'grep -rilE \"Acquire::http::Proxy|127.0.0.1:$port\" /etc/apt' | grep -q ."

# --- 5. [budget]: over it the static check fails and says why; under it passes
"$kiln" verify "$work/m.toml" --runner local --only "$combo" --state-dir "$state" --format json >"$work/v1.json" 2>"$work/v1.err"
check "verify over budget: exit 1" test $? -eq 1
check "static check failed on the budget, naming the size and the largest layer" json "$work/v1.json" \
  "any('over the runtime budget of 100 MB ([budget] runtime = \"100MB\")' in p and 'largest layers:' in p and 'RUN set -eux' in p for k in j['combos'][0]['checks'] if k['check'] == 'static' for p in k['problems']) and any(k['check'] == 'static' and k['status'] == 'failed' for k in j['combos'][0]['checks'])"
matrix 2GB >"$work/m.toml"
"$kiln" verify "$work/m.toml" --runner local --only "$combo" --force --state-dir "$state" --format json >"$work/v2.json" 2>"$work/v2.err"
check "under budget: the static check passes" json "$work/v2.json" \
  "any(k['check'] == 'static' and k['status'] == 'passed' and k['detail']['budget'] == 2000000000 and k['detail']['size'] > 100e6 for k in j['combos'][0]['checks'])"
finish
