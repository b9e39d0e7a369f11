#!/usr/bin/env bash
# `kiln audit docker://...` and `kiln check-driver` on an image read straight
# from a real registry (Debian docker-registry, started by
# tests/registry/registry.sh; skopeo pushes, gzipping the layers), against
# the same image read from its docker-save tar: the same libraries,
# components and verdicts; credentials from the Docker config of a registry
# that wants them. Exit 2, naming the input, for a missing tag, a dead
# registry, missing or wrong credentials, a bad reference and a layer whose
# bytes do not match its digest.
# Usage: test_audit_registry.sh PATH/TO/kiln FIXTURE_DIR
set -uo pipefail
kiln=$1 fixtures=$2
registry_sh=$PWD/tests/registry/registry.sh
tmp=$(mktemp -d)
export KILN_TEST_ROOT=$tmp/registries  # registry.sh keeps its storage here
name=cli-audit-$$
cleanup() {
  bash "$registry_sh" stop "$name" >/dev/null 2>&1
  bash "$registry_sh" stop "$name-auth" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
finish() { echo "audit registry: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }
json_assert() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"; }

for need in skopeo docker-registry curl; do
  command -v "$need" >/dev/null || { echo "SKIP: $need not installed"; exit 77; }
done
if [ ! -f "$fixtures/libk_sass.so" ] || [ ! -f /usr/local/cuda/lib64/libcudart.so.13 ]; then
  echo "SKIP: no nvcc fixtures or CUDA 13 runtime"; exit 77
fi

addr=$(bash "$registry_sh" start "$name") || { echo "FAIL: the test registry did not start"; failed=1; finish; }
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$tmp/policy.json"
push() {  # push ARCHIVE [HOST/]REPO:TAG [skopeo options]
  local archive=$1 dest=$2; shift 2
  [[ "$dest" == */*/* ]] || dest=$addr/$dest
  skopeo --policy "$tmp/policy.json" copy --quiet --dest-tls-verify=false "$@" "docker-archive:$archive" "docker://$dest"
}
make_image() {  # make_image OUT.tar MARKER: the audit image, its last layer made unique by MARKER
  python3 scripts/make-audit-image.py "$1" \
    --layer usr/local/cuda-13.0/lib64/libcudart.so.13=/usr/local/cuda/lib64/libcudart.so.13 \
    --layer opt/app/lib/libapp_cuda.so="$fixtures/libk_sass.so" \
    --layer opt/app/lib/libapp_cuda_ptx80.so="$fixtures/libk_ptx80.so" \
    --text 'usr/local/cuda-13.0/version.json={"cuda":{"version":"13.0.2"},"cuda_cudart":{"version":"13.0.96"}}' \
    --text 'usr/lib/x86_64-linux-gnu/libcuda.so.1=shadowing driver' \
    --text "etc/kiln-marker=$2" --env CUDA_VERSION=13.0.2 2>/dev/null
}

make_image "$tmp/img.tar" "the image both ways"
push "$tmp/img.tar" audit/x:1
check "skopeo pushed the image" test $? -eq 0
image=docker://$addr/audit/x:1

# --- the same answers as from the tar ----------------------------------------
# Per library its SASS/PTX lists, the components, the GPU grid and the driver floor.
same_audit() {  # same_audit A.json B.json
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p))["images"][0] for p in sys.argv[1:3])
def view(i):
    return {"libraries": sorted((l["path"], l.get("sass"), l.get("ptx"), l.get("error")) for l in i["libraries"]),
            "components": i["components"], "gpus": i["gpus"], "min_driver": i["min_driver"],
            "cuda_runtime": i["cuda_runtime"], "layers": i["layers"]}
va, vb = view(a), view(b)
for k in va:
    if va[k] != vb[k]:
        print(f"differs in {k}:\n  tar:      {va[k]}\n  registry: {vb[k]}")
sys.exit(0 if va == vb and len(a["libraries"]) >= 2 else 1)
PY
}
"$kiln" audit "$tmp/img.tar" --format json >"$tmp/tar.json"
check "audit of the tar exit 0" test $? -eq 0
"$kiln" audit "$image" --format json >"$tmp/reg.json" 2>"$tmp/err.txt"
check "audit of the registry image exit 0" test $? -eq 0
cat "$tmp/err.txt"
check "same libraries, components and verdicts as the tar" same_audit "$tmp/tar.json" "$tmp/reg.json"
check "source names the registry" json_assert "$tmp/reg.json" "j['images'][0]['source']=='registry $addr'"
check "input as given" json_assert "$tmp/reg.json" "j['images'][0]['input']=='$image'"
check "driver library warning" json_assert "$tmp/reg.json" "any('shadows the host' in w for w in j['images'][0]['warnings'])"

digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$addr/audit/x:1")
"$kiln" audit "docker://$addr/audit/x@$digest" --format json >"$tmp/dig.json"
check "audit by digest exit 0" test $? -eq 0
check "by digest: the same answers" same_audit "$tmp/tar.json" "$tmp/dig.json"

# localhost is loopback too; --plain-http is accepted (and changes nothing here).
"$kiln" audit --plain-http "docker://localhost:${addr#*:}/audit/x:1" --gpu H100 >"$tmp/table.txt"
check "localhost with --plain-http exit 0" test $? -eq 0
check "table names the GPU" grep -q "H100" "$tmp/table.txt"

# --- check-driver: the same exit codes as on the tar -------------------------
same_gate() {  # same_gate WANT ARGS...: exit WANT on both the tar and the registry image
  local want=$1; shift
  "$kiln" check-driver "$@" "$tmp/img.tar" >/dev/null; local on_tar=$?
  "$kiln" check-driver "$@" --plain-http "$image" >/dev/null; local on_registry=$?
  [ "$on_tar" -eq "$want" ] && [ "$on_registry" -eq "$want" ] ||
    { echo "check-driver $*: tar exit $on_tar, registry exit $on_registry, want $want"; return 1; }
}
check "check-driver ok on both" same_gate 0 --driver 580.95.05 --gpu H100 --gpu A100
check "check-driver PTX JIT floor on both" same_gate 1 --driver 580.65.06 --gpu H100
check "check-driver unsupported GPU on both" same_gate 1 --driver 590.0 --gpu T4

# --- a registry that wants credentials: from the Docker config, never argv ---
export KILN_SECRET="kiln-planted-S3cret-$$"
python3 -W ignore -c 'import crypt, os
print("kiln:" + crypt.crypt(os.environ["KILN_SECRET"], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' >"$tmp/htpasswd"
docker_config() {  # docker_config DIR PASSWORD: a config.json with auths for the auth registry
  mkdir -p "$1"
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$auth_addr" "$(printf 'kiln:%s' "$2" | base64 -w0)" >"$1/config.json"
}
if auth_addr=$(bash "$registry_sh" start "$name-auth" "$tmp/htpasswd"); then
  docker_config "$tmp/good" "$KILN_SECRET"
  docker_config "$tmp/wrong" "not-$KILN_SECRET"
  mkdir -p "$tmp/none"
  push "$tmp/img.tar" "$auth_addr/audit/x:1" --dest-authfile "$tmp/good/config.json"
  check "skopeo pushed to the auth registry" test $? -eq 0
  DOCKER_CONFIG=$tmp/good "$kiln" audit "docker://$auth_addr/audit/x:1" --format json >"$tmp/auth.json" 2>"$tmp/auth-err.txt"
  check "credentials from DOCKER_CONFIG: exit 0" test $? -eq 0
  check "credentials from DOCKER_CONFIG: the same answers" same_audit "$tmp/tar.json" "$tmp/auth.json"
  DOCKER_CONFIG=$tmp/none "$kiln" audit "docker://$auth_addr/audit/x:1" 2>"$tmp/err.txt" >/dev/null
  check "no credentials exit 2" test $? -eq 2
  check "no credentials: says docker login" grep -q "docker://$auth_addr/audit/x:1: error: .*docker login" "$tmp/err.txt"
  DOCKER_CONFIG=$tmp/wrong "$kiln" audit "docker://$auth_addr/audit/x:1" 2>>"$tmp/auth-err.txt" >/dev/null
  check "wrong password exit 2" test $? -eq 2
  check "wrong password: rejected" grep -q "rejected the credentials for user 'kiln'" "$tmp/auth-err.txt"
  check "the password is never printed" bash -c '! grep -rqF -e "$KILN_SECRET" -e "$(printf "kiln:%s" "$KILN_SECRET" | base64 -w0)" "$@"' _ \
    "$tmp/auth-err.txt" "$tmp/err.txt" "$tmp/auth.json"
else
  check "the auth registry started" false
fi

# --- what cannot be read: exit 2, the input named ----------------------------
"$kiln" audit "docker://$addr/audit/x:nope" 2>"$tmp/err.txt" >/dev/null
check "missing tag exit 2" test $? -eq 2
check "missing tag named, not found" grep -q "docker://$addr/audit/x:nope: error: .*not found" "$tmp/err.txt"
"$kiln" check-driver --driver 590.0 "docker://$addr/audit/x:nope" 2>/dev/null >/dev/null
check "check-driver on a missing tag exit 2" test $? -eq 2

dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$kiln" audit "docker://127.0.0.1:$dead/audit/x:1" 2>"$tmp/err.txt" >/dev/null
check "dead registry exit 2" test $? -eq 2
check "dead registry named, cannot reach" grep -q "docker://127.0.0.1:$dead/audit/x:1: error: .*cannot reach" "$tmp/err.txt"

"$kiln" audit "docker://$addr/Audit/X:1" 2>"$tmp/err.txt" >/dev/null
check "bad reference exit 2" test $? -eq 2
check "bad reference named" grep -q "docker://$addr/Audit/X:1: error: " "$tmp/err.txt"

# A layer whose bytes no longer match its digest (same size, still a valid
# gzip stream or tar): the registry serves it as is; kiln must refuse it.
make_image "$tmp/bad.tar" "to be corrupted $$"
push "$tmp/bad.tar" audit/bad:1
last_layer=$(curl -s -H 'Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' \
  "http://$addr/v2/audit/bad/manifests/1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][-1]["digest"][7:])')
blob=$KILN_TEST_ROOT/$name/storage/docker/registry/v2/blobs/sha256/${last_layer:0:2}/$last_layer/data
python3 - "$blob" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
if data[:2] == b"\x1f\x8b" and not data[3] & 0x02:  # gzip without a header CRC
    data[4] ^= 0xFF  # MTIME: the stream still inflates to the same tar
else:  # a plain tar: change the marker file's text, not its header
    i = data.index(b"to be corrupted")
    data[i:i + 2] = b"TO"
open(path, "r+b").write(data)
PY
check "corrupted a layer in the registry's storage" test $? -eq 0
"$kiln" audit "docker://$addr/audit/bad:1" 2>"$tmp/err.txt" >/dev/null
check "digest mismatch exit 2" test $? -eq 2
check "digest mismatch named" grep -q "docker://$addr/audit/bad:1: error: .*digest mismatch" "$tmp/err.txt"
"$kiln" check-driver --driver 590.0 --gpu H100 "docker://$addr/audit/bad:1" 2>/dev/null >/dev/null
check "check-driver on a corrupted layer exit 2" test $? -eq 2

finish
