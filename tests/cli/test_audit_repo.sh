#!/usr/bin/env bash
# `kiln audit docker://HOST/REPO` audits every tag of a repository
# in one table (kiln's record and staging tags skipped, tags sharing a
# manifest audited once), and the audit layer cache: an image sharing its
# base layer with one audited before reads only its new layers (asserted by
# the layers_read / layers_from_cache counts, never by time), a damaged cache
# entry is ignored and rewritten, --no-cache reads everything and stores
# nothing. Images are written with scripts/make-audit-image.py and pushed
# with skopeo (gzip layers; the same layer tar gives the same blob) to a
# private registry (tests/registry/registry.sh).
# Usage: test_audit_repo.sh PATH/TO/kiln FIXTURE_DIR
set -uo pipefail
kiln=$1 fixtures=$2
registry_sh=$PWD/tests/registry/registry.sh
tmp=$(mktemp -d)
export KILN_TEST_ROOT=$tmp/registries
export KILN_AUDIT_CACHE=$tmp/cache  # never the user's cache
name=i-auditrepo-$$
cleanup() { bash "$registry_sh" stop "$name" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
passed=0 failed=0
check() {  # check NAME COMMAND...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; fi
}
finish() { echo "audit repository: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }
json_assert() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1" ||
  { echo "  not true: $2"; return 1; }; }

for need in skopeo docker-registry curl; do
  command -v "$need" >/dev/null || { echo "SKIP: $need not installed"; exit 77; }
done
[ -f "$fixtures/libk_sass.so" ] || { echo "SKIP: no nvcc fixtures"; exit 77; }

addr=$(bash "$registry_sh" start "$name") || { echo "FAIL: the test registry did not start"; failed=1; finish; }
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$tmp/policy.json"
push() {  # push ARCHIVE REPO:TAG
  skopeo --policy "$tmp/policy.json" copy --quiet --dest-tls-verify=false "docker-archive:$1" "docker://$addr/$2"
}
# make_image OUT.tar APP_LIB CUDA_VERSION MARKER: a shared base layer (a
# library with SASS 7.5/8.0/9.0), the app's library, a small text layer.
make_image() {
  python3 scripts/make-audit-image.py "$1" \
    --layer opt/base/lib/libbase_cuda.so="$fixtures/libk_sass.so" \
    --layer opt/app/lib/libapp_cuda.so="$2" \
    --text "etc/kiln-marker=$4" --env CUDA_VERSION="$3" 2>/dev/null
}
repo=i-auditrepo/models
make_image "$tmp/v1.tar" "$fixtures/libk_sass.so" 12.2.0 v1    # T4: native, runs on 535
make_image "$tmp/v2.tar" "$fixtures/libk_ptx80.so" 12.2.0 v2   # T4: PTX 8.0 only, unsupported
make_image "$tmp/v3.tar" "$fixtures/libk_sass.so" 13.0.2 v3    # T4: native, needs a 580 driver
ok=0
for t in v1 v2 v3; do push "$tmp/$t.tar" "$repo:$t" || ok=1; done
push "$tmp/v1.tar" "$repo:v1-alias" || ok=1                      # the same manifest as v1
push "$tmp/v1.tar" "$repo:kiln-push-0123abcd" || ok=1            # kiln's staging tag
push "$tmp/v1.tar" "$repo:sha256-$(printf '%064d' 7).kiln" || ok=1  # kiln's record tag
check "skopeo pushed the images" test "$ok" -eq 0

# --- the layer cache ---------------------------------------------------------
"$kiln" audit "docker://$addr/$repo:v1" --gpu T4 --format json >"$tmp/v1.json"
check "first audit exit 0" test $? -eq 0
check "first audit reads every layer" json_assert "$tmp/v1.json" \
  "j['images'][0]['layers']==3 and j['images'][0]['layers_read']==3 and j['images'][0]['layers_from_cache']==0"
"$kiln" audit "docker://$addr/$repo:v2" --gpu T4 --format json >"$tmp/v2.json"
check "second image exit 0" test $? -eq 0
check "second image reads only its new layers (base from the cache)" json_assert "$tmp/v2.json" \
  "j['images'][0]['layers_read']==2 and j['images'][0]['layers_from_cache']==1"
check "the cached base layer's library is still reported" json_assert "$tmp/v2.json" \
  "any(l['path']=='opt/base/lib/libbase_cuda.so' and 'sm_75' in l['sass'] for l in j['images'][0]['libraries'])"
check "T4 unsupported on the PTX 8.0 image" json_assert "$tmp/v2.json" "j['images'][0]['gpus']['T4']['support']=='unsupported'"
"$kiln" audit "docker://$addr/$repo:v1" --gpu T4 --format json >"$tmp/v1-again.json"
check "the same image again: every layer from the cache" json_assert "$tmp/v1-again.json" \
  "j['images'][0]['layers_read']==0 and j['images'][0]['layers_from_cache']==3"
same_answers() {  # same libraries, components, verdicts (the cache changes nothing)
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p))["images"][0] for p in sys.argv[1:3])
keys = ["libraries", "components", "gpus", "min_driver", "cuda_runtime", "layers", "config_digest"]
diff = [k for k in keys if a[k] != b[k]]
print("differs:", diff) if diff else None
sys.exit(1 if diff else 0)
PY
}
check "answers from the cache equal those read" same_answers "$tmp/v1.json" "$tmp/v1-again.json"
"$kiln" audit "docker://$addr/$repo:v1" --gpu T4 >"$tmp/v1.txt"
check "table says how many layers came from the cache" grep -q "3 layers: 0 read, 3 from cache" "$tmp/v1.txt"

# A damaged entry (garbage, or a flipped byte under a valid header) is a miss:
# exit 0, the same answers, a warning, and the entry rewritten.
entries=$(find "$KILN_AUDIT_CACHE" -name '*.layer' | wc -l)
check "one cache entry per distinct layer (5)" test "$entries" -eq 5
for f in $(find "$KILN_AUDIT_CACHE" -name '*.layer'); do
  if [ "$((RANDOM % 2))" -eq 0 ]; then echo "not a cache entry" >"$f"
  else python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-3]^=0x55; open(p,"wb").write(b)' "$f"; fi
done
"$kiln" audit "docker://$addr/$repo:v1" --gpu T4 --format json >"$tmp/damaged.json" 2>"$tmp/err.txt"
check "damaged cache entries: exit 0" test $? -eq 0
check "damaged cache entries: layers read again" json_assert "$tmp/damaged.json" \
  "j['images'][0]['layers_read']==3 and j['images'][0]['layers_from_cache']==0"
check "damaged cache entries: a warning says so" json_assert "$tmp/damaged.json" \
  "any('damaged entry' in w for w in j['images'][0]['warnings'])"
check "damaged cache entries: the same answers" same_answers "$tmp/v1.json" "$tmp/damaged.json"
"$kiln" audit "docker://$addr/$repo:v1" --gpu T4 --format json >"$tmp/rewritten.json"
check "damaged entries were rewritten" json_assert "$tmp/rewritten.json" \
  "j['images'][0]['layers_from_cache']==3 and not any('damaged' in w for w in j['images'][0]['warnings'])"

# --no-cache: reads every layer, neither uses nor fills the cache.
KILN_AUDIT_CACHE=$tmp/nocache "$kiln" audit --no-cache "docker://$addr/$repo:v2" --gpu T4 --format json >"$tmp/nocache.json"
check "--no-cache exit 0" test $? -eq 0
check "--no-cache reads every layer" json_assert "$tmp/nocache.json" \
  "j['images'][0]['layers_read']==3 and j['images'][0]['layers_from_cache']==0"
check "--no-cache stores nothing" test ! -e "$tmp/nocache"
check "--no-cache: the same answers" same_answers "$tmp/v2.json" "$tmp/nocache.json"
"$kiln" audit --cache-dir "$tmp/flagcache" "docker://$addr/$repo:v2" --gpu T4 --format json >/dev/null
check "--cache-dir is where entries go" test "$(find "$tmp/flagcache" -name '*.layer' | wc -l)" -eq 3

# --- the whole repository ------------------------------------------------------
export KILN_AUDIT_CACHE=$tmp/repo-cache
"$kiln" audit "docker://$addr/$repo" --gpu T4 --driver 535.54.03 --format json >"$tmp/repo.json" 2>"$tmp/repo-err.txt"
check "repository audit exit 0" test $? -eq 0
cat "$tmp/repo-err.txt"
python3 - "$tmp/repo.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
r = j["repositories"][0]
rows = {t["tag"]: t for t in r["tags"]}
want = {"v1": ("native", True), "v1-alias": ("native", True), "v2": ("unsupported", False), "v3": ("native", False)}
bad = []
for tag, (support, ok) in want.items():
    t = rows.get(tag)
    if not t or t["gpus"].get("T4", {}).get("support") != support or t["gpus"]["T4"]["driver_ok"] is not ok:
        bad.append((tag, t and t["gpus"]))
if rows["v3"]["gpus"]["T4"]["min_driver"] is None or not rows["v3"]["gpus"]["T4"]["min_driver"].startswith("580"):
    bad.append(("v3 min_driver", rows["v3"]["gpus"]["T4"]))
skipped = [t for t in r["tags"] if t["skipped"]]
if sorted(t["tag"] for t in skipped) != ["kiln-push-0123abcd", "sha256-" + "0" * 63 + "7.kiln"]:
    bad.append(("skipped", skipped))
if len(r["tags"]) != 6 or r["driver"] != "535.54.03":
    bad.append(("rows", len(r["tags"]), r["driver"]))
# v1 and v1-alias name one manifest: audited once.
if rows["v1"]["image"] != rows["v1-alias"]["image"] or rows["v1"]["digest"] != rows["v1-alias"]["digest"]:
    bad.append(("alias", rows["v1"], rows["v1-alias"]))
imgs = [j["images"][t["image"]] for t in r["tags"] if t["image"] is not None]
if len(j["images"]) != 3 or len({i["config_digest"] for i in j["images"]}) != 3:
    bad.append(("distinct images", len(j["images"])))
# 9 layers in 3 images, 5 distinct (base, 2 app libraries, 3 marker layers... v1/v3 share the app layer)
read = sum(i["layers_read"] for i in j["images"]); cached = sum(i["layers_from_cache"] for i in j["images"])
if (read, cached) != (6, 3):
    bad.append(("layers read/cached", read, cached))
for b in bad: print("bad:", b)
sys.exit(1 if bad else 0)
PY
check "repository JSON: every tag, the right verdicts, kiln tags skipped, aliases once" test $? -eq 0
check "skipped tags said on stderr" grep -q "skipped tag kiln-push-0123abcd" "$tmp/repo-err.txt"

"$kiln" audit "docker://$addr/$repo" --gpu T4 --driver 535.54.03 >"$tmp/repo.txt"
check "repository table exit 0" test $? -eq 0
cat "$tmp/repo.txt"
check "table: v1 on T4 is native, driver ok" grep -Eq "^  v1 +sha256:[0-9a-f]+ +T4.* native +ok" "$tmp/repo.txt"
check "table: v3 needs a newer driver" grep -Eq "^  v3 .* native +needs 580" "$tmp/repo.txt"
check "table: v2 unsupported" grep -Eq "^  v2 .* unsupported" "$tmp/repo.txt"
check "table: record tag skipped" grep -q "skipped: kiln's record tag" "$tmp/repo.txt"
check "table: every layer from the cache the second time" grep -q "layers: 0 read, 9 from cache" "$tmp/repo.txt"
"$kiln" audit "docker://$addr/$repo" --gpu T4 --driver 535.54.03 --format md >"$tmp/repo.md"
check "markdown table" grep -q "| \`v2\` | \`sha256:" "$tmp/repo.md"

# A multi-platform index: the linux/amd64 image is audited, as for one tag.
push "$tmp/v1.tar" i-auditrepo/multi:amd && push "$tmp/v2.tar" i-auditrepo/multi:arm
python3 - "$addr" <<'PY'
import hashlib, json, sys, urllib.request
addr = sys.argv[1]
mt = "application/vnd.docker.distribution.manifest.v2+json"
def get(tag):
    req = urllib.request.Request(f"http://{addr}/v2/i-auditrepo/multi/manifests/{tag}", headers={"Accept": mt})
    body = urllib.request.urlopen(req).read()
    return {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(body).hexdigest(), "size": len(body)}
index = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
         "manifests": [dict(get("arm"), platform={"architecture": "arm64", "os": "linux"}),
                       dict(get("amd"), platform={"architecture": "amd64", "os": "linux"})]}
req = urllib.request.Request(f"http://{addr}/v2/i-auditrepo/multi/manifests/multi", data=json.dumps(index).encode(),
                             method="PUT", headers={"Content-Type": index["mediaType"]})
urllib.request.urlopen(req)
PY
check "pushed a multi-platform index" test $? -eq 0
"$kiln" audit "docker://$addr/i-auditrepo/multi" --gpu T4 --format json >"$tmp/multi.json" 2>/dev/null
check "index repository exit 0" test $? -eq 0
check "the index tag is judged by its linux/amd64 image" json_assert "$tmp/multi.json" \
  "{t['tag']: t['gpus']['T4']['support'] for t in j['repositories'][0]['tags']} == {'amd': 'native', 'arm': 'unsupported', 'multi': 'native'}"

"$kiln" audit "docker://$addr/i-auditrepo/none" --gpu T4 2>"$tmp/err.txt" >/dev/null
check "unknown repository exit 2" test $? -eq 2
check "unknown repository named" grep -q "docker://$addr/i-auditrepo/none: error: " "$tmp/err.txt"
finish
