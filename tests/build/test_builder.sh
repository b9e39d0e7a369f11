#!/usr/bin/env bash
# Issue 15.2: a named buildx builder that is not the runner's engine, its
# images pushed by digest to the staging registry, then verified and
# promoted from there. Real components only: two private dockerds
# (tests/support/dockerd.sh: "main", the runner's engine, and "farm", the
# builder's), a Docker context bound to farm (its docker-driver builder has
# the context's name; buildx refuses `buildx create --driver docker`), a
# private CNCF registry (tests/registry/registry.sh), the real kiln binary,
# busybox-only templates (tests/build/data). The base image is on farm only.
#
#   test_builder.sh KILN    exit 0 passed, 1 a check failed, 77 skipped
set -uo pipefail

kiln=$(realpath "${1:?usage: test_builder.sh path/to/kiln}")
src=$(cd "$(dirname "$0")/../.." && pwd)
dockerd=$src/tests/support/dockerd.sh
registry=$src/tests/registry/registry.sh

[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for private dockerds"; exit 77; }
command -v dockerd >/dev/null || { echo "SKIP: dockerd not installed"; exit 77; }
command -v docker-registry >/dev/null || { echo "SKIP: docker-registry not installed"; exit 77; }
docker buildx version >/dev/null 2>&1 || { echo "SKIP: no docker buildx plugin"; exit 77; }
[[ -x /bin/busybox ]] || { echo "SKIP: no /bin/busybox (apt-get install busybox-static)"; exit 77; }

tag=$$
main=kbx-main-$tag farm=kbx-farm-$tag regname=kbx-$tag ctx=kiln-test-farm-$tag
tmp=$(mktemp -d /tmp/kiln-builder-test.XXXXXX)
# Contexts and buildx state live in a Docker config of the test's own.
export DOCKER_CONFIG=$tmp/docker-config
mkdir -p "$DOCKER_CONFIG"
unset DOCKER_HOST DOCKER_CONTEXT
cleanup() {
  "$dockerd" purge "$main" >/dev/null 2>&1
  "$dockerd" purge "$farm" >/dev/null 2>&1
  "$registry" stop "$regname" >/dev/null 2>&1
  [[ -n ${KILN_TEST_KEEP:-} ]] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

fails=0
pass() { echo "  ok   $*"; }
fail() { echo "  FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
section() { echo "== $*"; }
same() { [[ -n "$1" && "$1" == "$2" ]]; }  # equal and not both empty
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); r = eval(sys.argv[2]); print(r if not isinstance(r, (dict, list, tuple)) else json.dumps(r))' "$1" "$2"; }
sql() { python3 -c 'import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in row))' "$1/state.db" "$2"; }
sqlw() { python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()' "$1/state.db" "$2"; }
# status SOCKET PATH: the Engine API's HTTP status for a GET.
status() { curl -s --unix-socket "$1" -o /dev/null -w '%{http_code}' "http://localhost/v1.41$2"; }
accept='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
# manifest REPO REF: the registry's manifest (body to $tmp/manifest.json), prints Docker-Content-Digest.
manifest() {
  curl -fsS -H "Accept: $accept" -D "$tmp/headers" -o "$tmp/manifest.json" "http://$reg/v2/$1/manifests/$2" &&
    tr -d '\r' <"$tmp/headers" | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

section "engines main and farm, registry, context $ctx"
smain=$("$dockerd" start "$main") || { echo "FAIL: dockerd $main did not start"; exit 1; }
sfarm=$("$dockerd" start "$farm") || { echo "FAIL: dockerd $farm did not start"; exit 1; }
reg=$("$registry" start "$regname") || { echo "FAIL: registry did not start"; exit 1; }
mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/tmp" "$tmp/rootfs/etc"
cp /bin/busybox "$tmp/rootfs/bin/busybox"
for a in sh echo cat; do ln -s busybox "$tmp/rootfs/bin/$a"; done
echo "root:x:0:0:root:/:/bin/sh" >"$tmp/rootfs/etc/passwd"
tar -C "$tmp/rootfs" -cf "$tmp/busybox.tar" .
curl -fsS --unix-socket "$sfarm" -X POST -H 'Content-Type: application/x-tar' --data-binary "@$tmp/busybox.tar" \
  "http://localhost/v1.41/images/create?fromSrc=-&repo=kiln-test/busybox&tag=12" >/dev/null ||
  { echo "FAIL: import the base on farm"; exit 1; }
docker context create "$ctx" --docker "host=unix://$sfarm" >/dev/null || { echo "FAIL: docker context create"; exit 1; }
check "buildx lists the context's docker-driver builder $ctx" bash -c "docker buildx inspect '$ctx' | grep -q 'Driver: *docker'"

repo=kiln-test/bx$tag
data=$src/tests/build/data
mk() {  # mk FILE BUILDER [EXTRA]: the build test matrix, one runner "farm" on main with BUILDER
  sed -e 's/^name = "bt"/name = "bx"/' "$data/matrices/offline.toml" >"$tmp/$1"
  cat >>"$tmp/$1" <<TOML
${3:-}

[registry]
url = "$reg"
repository = "$repo"
insecure = true

[runners.farm]
engine = "unix://$smain"
backend = "buildx"
builder = "$2"
TOML
  echo "$tmp/$1"
}
m=$(mk bx.toml "$ctx")
st=$tmp/state
K() { "$kiln" --data-dir "$data" "$@"; }
R=cuda11.8-debian12-runtime D=cuda11.8-debian12-devel

section "1. unknown builder, builder without buildx: exit 2"
K build "$(mk bad.toml no-such-builder-$tag)" --state-dir "$tmp/st-bad" --only "$R" >"$tmp/bad.out" 2>"$tmp/bad.err"
check "unknown builder: exit 2" test $? -eq 2
check "the message names the builder and docker buildx ls" \
  bash -c "grep -q 'no-such-builder-$tag' '$tmp/bad.err' && grep -q 'docker buildx ls' '$tmp/bad.err'"
check "nothing built: no ledger attempt" test "$(sql "$tmp/st-bad" "select count(*) from builds" 2>/dev/null || echo 0)" -eq 0
sed 's/^backend = "buildx"/backend = "engine"/' "$m" >"$tmp/engine-builder.toml"
K build "$tmp/engine-builder.toml" --state-dir "$tmp/st-bad2" >/dev/null 2>"$tmp/bad2.err"
check "builder with backend engine: exit 2 naming backend = \"buildx\"" \
  bash -c "test $? -eq 2 && grep -q 'backend = \"buildx\"' '$tmp/bad2.err'"

section "2. build through builder $ctx: pushed by digest, not loaded into main"
K build "$m" --state-dir "$st" --only 'cuda11.8-*' --format json >"$tmp/b1.json" 2>"$tmp/b1.err"
rc=$?
check "build exits 0 (rc $rc)" test $rc -eq 0
[[ $rc -eq 0 ]] || { cat "$tmp/b1.err"; }
check "2 stages built" test "$(json "$tmp/b1.json" "d['summary']['built']")" -eq 2
rref=$(json "$tmp/b1.json" "{s['id']: s.get('image_ref', '') for s in d['combos']}['$R']")
dref=$(json "$tmp/b1.json" "{s['id']: s.get('image_ref', '') for s in d['combos']}['$D']")
rid=$(json "$tmp/b1.json" "{s['id']: s['image_id'] for s in d['combos']}['$R']")
did=$(json "$tmp/b1.json" "{s['id']: s['image_id'] for s in d['combos']}['$D']")
check "runtime image_ref $rref is $reg/$repo@sha256:..." bash -c "[[ '$rref' =~ ^$reg/$repo@sha256:[0-9a-f]{64}$ ]]"
check "devel image_ref $dref is $reg/$repo@sha256:..." bash -c "[[ '$dref' =~ ^$reg/$repo@sha256:[0-9a-f]{64}$ ]]"
rdig=${rref#*@} ddig=${dref#*@}
got=$(manifest "$repo" "$rdig")
check "the registry serves the runtime manifest by digest ($got)" same "$got" "$rdig"
check "its config digest is the recorded image id $rid" \
  same "$(json "$tmp/manifest.json" "d['config']['digest']")" "$rid"
rlayers=$(json "$tmp/manifest.json" "' '.join(l['digest'] for l in d['layers'])")
manifest "$repo" "$ddig" >/dev/null
dlayers=$(json "$tmp/manifest.json" "' '.join(l['digest'] for l in d['layers'])")
check "the devel image was built FROM the pushed runtime (its layers start with the runtime's)" \
  test -n "$rlayers" -a "${dlayers#"$rlayers"}" != "$dlayers"
check "main engine: no image $rid" test "$(status "$smain" "/images/$rid/json")" == 404
check "main engine: no image $did" test "$(status "$smain" "/images/$did/json")" == 404
check "main engine: no kiln.local/bx image" test "$(status "$smain" "/images/kiln.local/bx:$R/json")" == 404
check "main engine holds no image at all" test "$(curl -s --unix-socket "$smain" http://localhost/v1.41/images/json)" == "[]"
check "farm engine built it (the docker driver keeps it there): $rid" test "$(status "$sfarm" "/images/$rid/json")" == 200
check "ledger: runtime attempt records $rref" \
  same "$(sql "$st" "select image_ref from builds where stage_id = '$R' and status = 'built'")" "$rref"
check "ledger: devel attempt records the digest ${ddig:0:19}" \
  same "$(sql "$st" "select digest from builds where stage_id = '$D' and status = 'built'")" "$ddig"
check "ledger: backend buildx on the runner's engine" \
  test "$(sql "$st" "select distinct engine || ' ' || backend from builds")" == "unix://$smain buildx"

K build "$m" --state-dir "$st" --only 'cuda11.8-*' --format json >"$tmp/b2.json" 2>/dev/null
check "rerun exits 0" test $? -eq 0
check "rerun: both cached (the registry still has them)" test "$(json "$tmp/b2.json" "d['summary']['cached']")" -eq 2
check "rerun: same image_ref" same "$(json "$tmp/b2.json" "{s['id']: s.get('image_ref', '') for s in d['combos']}['$R']")" "$rref"
check "rerun: no new attempt" test "$(sql "$st" "select count(*) from builds")" -eq 2

section "3. verify reads the image from the registry"
K verify "$m" --state-dir "$st" --only "$R" --format json >"$tmp/v1.json" 2>"$tmp/v1.err"
rc=$?
check "verify exits 1 (a busybox image has no CUDA) (rc $rc)" test $rc -eq 1
check "verify: the image id is the pushed one" same "$(json "$tmp/v1.json" "d['combos'][0]['image_id']")" "$rid"
check "static check read $rref" same "$(json "$tmp/v1.json" "d['combos'][0]['checks'][0]['detail'].get('source', '')")" "$rref"
problem() { json "$tmp/v1.json" "any('$1' in p for p in d['combos'][0]['checks'][0]['problems'])"; }
check "static check judged its config (NVIDIA_REQUIRE_CUDA named)" same "$(problem NVIDIA_REQUIRE_CUDA)" True
check "static check judged its files (no CUDA runtime in it)" same "$(problem 'CUDA runtime')" True
check "static verdict recorded against $rid" test "$(sql "$st" "select count(*) from verdicts where image_digest = '$rid' and check_name = 'static'")" -eq 1
check "verify left main without the image" test "$(curl -s --unix-socket "$smain" http://localhost/v1.41/images/json)" == "[]"

section "4. promote tags it within the registry, by digest"
# The verdict a passing static check writes (busybox cannot pass it).
for id in "$rid" "$did"; do
  sqlw "$st" "insert into verdicts (image_digest, runner, check_name, status, detail, recorded_at) values ('$id', 'farm', 'static', 'passed', '{}', 9999999999999)" >/dev/null
done
K promote "$m" --state-dir "$st" --only "$R" --format json >"$tmp/p1.json" 2>"$tmp/p1.err"
rc=$?
check "promote exits 0 (rc $rc)" test $rc -eq 0
[[ $rc -eq 0 ]] || cat "$tmp/p1.err" "$tmp/p1.json"
check "promote: tagged" test "$(json "$tmp/p1.json" "d['combos'][0]['tagged']")" == True
check "promote: the tag names the pushed digest" same "$(manifest "$repo" "$R")" "$rdig"
check "promote: its record is attached" test "$(json "$tmp/p1.json" "d['combos'][0]['recorded']")" == True
check "promote: main engine still holds no image" test "$(curl -s --unix-socket "$smain" http://localhost/v1.41/images/json)" == "[]"
K promote "$m" --state-dir "$st" --only "$R" --format json >"$tmp/p2.json" 2>/dev/null
check "promote again: the tag unchanged" test "$(json "$tmp/p2.json" "d['combos'][0]['tags'][0]['action']")" == unchanged
# The devel's release tag already names another image (the runtime): not moved without --force.
manifest "$repo" "$rdig" >/dev/null
ctype=$(tr -d '\r' <"$tmp/headers" | awk 'tolower($1) == "content-type:" { print $2 }')
curl -fsS -X PUT -H "Content-Type: $ctype" --data-binary "@$tmp/manifest.json" "http://$reg/v2/$repo/manifests/$D" >/dev/null
K promote "$m" --state-dir "$st" --only "$D" --format json >"$tmp/p3.json" 2>/dev/null
rc=$?
check "promote onto a tag naming another image: exit 1 (rc $rc)" test $rc -eq 1
check "the devel tag is a conflict, not moved" test "$(json "$tmp/p3.json" "d['combos'][0]['tags'][0]['action']")" == conflict
check "the devel tag still names the runtime digest" same "$(manifest "$repo" "$D")" "$rdig"
K promote "$m" --state-dir "$st" --only "$D" --force --format json >"$tmp/p4.json" 2>/dev/null
check "--force moves it to the pushed devel digest" same "$(manifest "$repo" "$D")" "$ddig"

section "5. smoke plumbing: the runner's engine pulls by digest"
mkdir -p "$tmp/data"
ln -s "$src/recipes" "$tmp/data/recipes"
cp -r "$data/templates" "$data/matrices" "$tmp/data/"
cat >"$tmp/data/templates/smoke.Dockerfile.mustache" <<'TPL'
ARG KILN_DEVEL={{devel_image}}
ARG KILN_IMAGE={{image}}
FROM ${KILN_DEVEL} AS suite
RUN cat /kiln-devel-id
FROM ${KILN_IMAGE}
RUN echo smoke > /kiln-smoke-built
TPL
m2=$(mk bx-gpu.toml "$ctx" $'[policy]\nverify = ["static", "gpu"]\ngpu_classes = ["sm_75"]')
${KILN_TEST_WRAP:-} "$kiln" --data-dir "$tmp/data" verify "$m2" --state-dir "$st" --only "$R" --smoke-on-cpu --format json >"$tmp/v2.json" 2>"$tmp/v2.err"
rc=$?
check "verify --smoke-on-cpu exits 1: the smoke suite cannot pass without a GPU (rc $rc)" test $rc -eq 1
check "verify --smoke-on-cpu ran a gpu check on farm" \
  test "$(json "$tmp/v2.json" "[c['runner'] for c in d['combos'][0]['checks'] if c['check'] == 'gpu']")" == '["farm"]'
check "main engine pulled the runtime by digest: kiln.local/bx:$R is $rid" \
  same "$(curl -s --unix-socket "$smain" "http://localhost/v1.41/images/kiln.local/bx:$R/json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')" "$rid"
check "and its devel sibling by digest: $did" test "$(status "$smain" "/images/$did/json")" == 200
check "the smoke image was built on it there" test "$(status "$smain" "/images/kiln.local/bx-smoke:$R/json")" == 200
check "the gpu check did not pass on a CPU runner" \
  test "$(json "$tmp/v2.json" "[c['status'] for c in d['combos'][0]['checks'] if c['check'] == 'gpu'][0]")" != passed

echo
if [[ $fails -eq 0 ]]; then echo "PASS test_builder"; exit 0; fi
echo "FAILED: $fails check(s)"; exit 1
