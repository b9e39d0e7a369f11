#!/usr/bin/env bash
# A multi-platform tag end to end, CI-sized: an amd64 + arm64 pair of tiny
# images (busybox bases, tests/build/data's busybox-only templates) built by
# the real kiln on the machine's engine -- the arm64 one under qemu-user-static
# (scripts/setup-qemu.sh) -- then promoted to a private registry as one OCI
# image index, read back, and audited per platform.
#
#   multiarch.sh KILN    exit 0 passed, 1 a check failed, 77 skipped
#
# Verify routes GPU checks by platform: with only an amd64 GPU runner the
# arm64 image's check runs nowhere and it awaits a linux/arm64 runner; with an
# arm64 runner declared, its check goes there alone.
#
# Then promote. Negative first: with only the amd64 image verified, promote writes nothing
# (an index never names an unverified platform) and says why. Then both
# verified: one index, both manifests in it, each platform audited.
#
# The verdicts are written into the ledger the way `kiln verify` writes them
# (tests/promote/test_promote.cpp does the same): a busybox image has no CUDA
# for the static check to find, and what is tested here is the index.
set -uo pipefail

kiln=$(realpath "${1:?usage: multiarch.sh path/to/kiln}")
src=$(cd "$(dirname "$0")/../.." && pwd)
data=$src/tests/build/data

[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (binfmt_misc, docker)"; exit 77; }
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || { echo "SKIP: no Docker engine"; exit 77; }
[[ -x /bin/busybox ]] || { echo "SKIP: no /bin/busybox (apt-get install busybox-static)"; exit 77; }
command -v skopeo >/dev/null || { echo "SKIP: no skopeo"; exit 77; }
"$src/scripts/setup-qemu.sh" --no-check >/dev/null || { echo "SKIP: qemu-aarch64 cannot be registered (scripts/setup-qemu.sh)"; exit 77; }

tmp=$(mktemp -d /tmp/kiln-multiarch.XXXXXX)
name="multiarch-$$"
repo="kiln-test/$name"
base=kiln-test-multiarch/busybox
reg_name="multiarch-$$"
cleanup() {
  docker rmi -f "$base:amd64-$$" "$base:arm64-$$" "kiln.local/$name:cuda12.4-debian13-runtime" \
    "kiln.local/$name:cuda12.4-debian13-runtime-aarch64" >/dev/null 2>&1
  "$src/tests/registry/registry.sh" stop "$reg_name" >/dev/null 2>&1
  [[ -n ${KILN_TEST_KEEP:-} ]] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

fails=0
t_start=$(date +%s)
pass() { echo "  ok   $*"; }
fail() { echo "  FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
section() { echo "== $* ($(( $(date +%s) - t_start )) s)"; }
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); r = eval(sys.argv[2]); print(r if not isinstance(r, (dict, list, tuple)) else json.dumps(r))' "$1" "$2"; }
# verdict STATE IMAGE_ID: a passing static verdict, as `kiln verify` records it.
verdict() { python3 -c 'import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1]); db.execute("INSERT INTO verdicts (image_digest, runner, check_name, status, detail, recorded_at) VALUES (?, ?, ?, ?, ?, ?)", (sys.argv[2], "local", "static", "passed", "{}", int(time.time() * 1000))); db.commit()' "$1/state.db" "$2"; }

# --- bases: busybox for amd64 (this machine's) and arm64 (Debian's .deb) ----
section "busybox bases for linux/amd64 and linux/arm64"
busybox_arm64=${KILN_TEST_BUSYBOX_ARM64:-}
if [[ -z $busybox_arm64 ]]; then
  # Debian's busybox-static for arm64, from the Debian mirror (the only
  # network CI has), with a throw-away apt configuration.
  a=$tmp/apt
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial"
  echo "deb [arch=arm64] ${DEBIAN_MIRROR:-http://deb.debian.org/debian} bookworm main" >"$a/sources.list"
  apt_opts=(-o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$a/lists"
            -o Dir::Cache="$a/cache" -o Dir::State::status=/dev/null -o APT::Architecture=arm64
            -o APT::Architectures::=arm64 -o APT::Sandbox::User=root -o Debug::NoLocking=1)
  if ! apt-get "${apt_opts[@]}" update -qq >"$tmp/apt.log" 2>&1 ||
     ! (cd "$tmp" && apt-get "${apt_opts[@]}" download busybox-static:arm64 >>"$tmp/apt.log" 2>&1); then
    echo "SKIP: cannot download busybox-static:arm64 from the Debian mirror:"; tail -n 5 "$tmp/apt.log"; exit 77
  fi
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/bb-arm64"
  busybox_arm64=$tmp/bb-arm64/bin/busybox
fi
for arch in amd64 arm64; do
  r=$tmp/rootfs-$arch
  mkdir -p "$r/bin" "$r/tmp" "$r/etc"
  if [[ $arch == amd64 ]]; then cp /bin/busybox "$r/bin/busybox"; else cp "$busybox_arm64" "$r/bin/busybox"; fi
  for t in sh echo cat uname ls true; do ln -s busybox "$r/bin/$t"; done
  echo "root:x:0:0:root:/:/bin/sh" >"$r/etc/passwd"
  # (docker import would give both the daemon's architecture: load-rootfs.py)
  TMPDIR=$tmp python3 "$src/scripts/load-rootfs.py" --arch "$arch" --tag "$base:$arch-$$" "$r" >/dev/null \
    || { echo "FAIL: load the $arch base"; exit 1; }
done
check "the arm64 base is an arm64 image" test "$(docker image inspect --format '{{.Architecture}}' "$base:arm64-$$")" = arm64
got=$(docker run --rm --network none --platform linux/arm64 "$base:arm64-$$" uname -m 2>&1)
check "an arm64 container runs here under qemu (uname -m = $got)" test "$got" = aarch64

addr=$("$src/tests/registry/registry.sh" start "$reg_name") || { echo "FAIL: registry did not start"; exit 1; }

cat >"$tmp/m.toml" <<EOF
name = "$name"
targets = ["H100"]

[axes]
cuda = ["12.4"]
os = ["debian13"]
flavor = ["runtime"]
platform = ["linux/amd64", "linux/arm64"]

[policy]
verify = ["static"]

[registry]
url = "$addr"
repository = "$repo"
insecure = true

[tags]
templates = ["cuda{cuda}-{os}-{flavor}"]

[[base]]
os = "debian13"
platform = "linux/amd64"
image = "$base:amd64-$$"

[[base]]
os = "debian13"
platform = "linux/arm64"
image = "$base:arm64-$$"

[runners.local]
engine = "${DOCKER_HOST:-unix:///var/run/docker.sock}"
backend = "engine"
gpu = "none"
# qemu-aarch64's binfmt handler (scripts/setup-qemu.sh) lets this engine run
# arm64 RUN steps: it builds both platforms (the scheduler places by them).
platform = ["linux/amd64", "linux/arm64"]
EOF
K() { "$kiln" --data-dir "$data" "$@"; }
st=$tmp/state
x86=cuda12.4-debian13-runtime
arm=cuda12.4-debian13-runtime-aarch64

# --- plan -------------------------------------------------------------------
section "plan: one combination per platform, one tag"
K plan "$tmp/m.toml" --format json >"$tmp/plan.json" 2>"$tmp/plan.err"
check "plan exits 0" test $? -eq 0
check "two valid combinations: $x86 and $arm" test "$(json "$tmp/plan.json" '",".join(sorted(c["id"] for c in d["combos"] if c["status"] == "valid"))')" = "$x86,$arm"
check "their platforms are x86_64 and aarch64" test "$(json "$tmp/plan.json" '",".join(sorted(c["platform"] for c in d["combos"]))')" = "aarch64,x86_64"
check "both name the same tag (the index)" test "$(json "$tmp/plan.json" 'len(set(tuple(c["tags"]) for c in d["combos"]))')" = 1

# --- build: the arm64 image under emulation -----------------------------------
section "build both platforms (arm64 RUN steps under qemu)"
nice -n 19 "$kiln" --data-dir "$data" build "$tmp/m.toml" --state-dir "$st" --format json >"$tmp/build.json" 2>"$tmp/build.err"
rc=$?
check "build exits 0 (rc $rc)" test $rc -eq 0
[[ $rc -eq 0 ]] || { tail -n 20 "$tmp/build.err"; find "$st/logs" -name '*.log' -exec tail -n 20 {} \; 2>/dev/null; }
check "the aarch64 image is linux/arm64" test "$(docker image inspect --format '{{.Os}}/{{.Architecture}}' "kiln.local/$name:$arm")" = linux/arm64
check "the x86_64 image is linux/amd64" test "$(docker image inspect --format '{{.Os}}/{{.Architecture}}' "kiln.local/$name:$x86")" = linux/amd64
got=$(docker run --rm --network none --platform linux/arm64 "kiln.local/$name:$arm" cat /kiln-runtime-id 2>&1)
check "its RUN step ran (under qemu) and wrote /kiln-runtime-id = $got" test "$got" = "$arm"
x86_id=$(docker image inspect --format '{{.Id}}' "kiln.local/$name:$x86")
arm_id=$(docker image inspect --format '{{.Id}}' "kiln.local/$name:$arm")

# --- verify: a GPU check goes only to a runner of the image's platform -----------
section "verify the arm64 image with only an amd64 GPU runner: it awaits an arm64 one"
# The same matrix asking for a gpu check on sm_90, with a GPU runner on this
# (amd64) engine. Nothing of the arm64 image may run there (a GPU check never
# runs emulated): verify reports it waiting for a linux/arm64 runner.
gpu_runner() {  # NAME PLATFORM: a GPU runner of class sm_90 on this engine, appended to m-gpu.toml
  printf '\n[runners.%s]\nengine = "%s"\ngpu = "nvidia"\ngpu_classes = ["sm_90"]\nplatform = "%s"\n' \
    "$1" "${DOCKER_HOST:-unix:///var/run/docker.sock}" "$2" >>"$tmp/m-gpu.toml"
}
sed -e 's/^verify = \["static"\]$/verify = ["static", "gpu"]\ngpu_classes = ["sm_90"]/' "$tmp/m.toml" >"$tmp/m-gpu.toml"
gpu_runner gpu-amd64 linux/amd64
K verify "$tmp/m-gpu.toml" --only "$arm" --state-dir "$tmp/state-verify" --format json >"$tmp/v.json" 2>"$tmp/v.err"
rc=$?
check "verify exits 1: not verified (rc $rc)" test $rc -eq 1
[[ $rc -eq 1 ]] || cat "$tmp/v.err"
# (the static check reads files on the first runner's engine, any platform)
check "no gpu check of the arm64 image ran on the amd64 GPU runner" \
  test "$(json "$tmp/v.json" 'sum(1 for c in d["combos"] for k in c["checks"] if k["check"] == "gpu")')" = 0
reason=$(json "$tmp/v.json" 'd["combos"][0]["reason"]')
echo "     reason: $reason"
check "it awaits a runner for linux/arm64" \
  bash -c '[[ $1 == *"awaiting a runner for linux/arm64 with GPU class sm_90 (runner gpu-amd64 is linux/amd64)"* ]]' _ "$reason"

# With an arm64 GPU runner declared, the arm64 image's gpu check goes there
# (and only there). This matrix has no devel image to compile the smoke
# suite, so the check errs at once, on that runner: routing is what is tested.
gpu_runner gpu-arm64 linux/arm64
K verify "$tmp/m-gpu.toml" --only "$arm" --state-dir "$tmp/state-verify" --format json >"$tmp/v2.json" 2>"$tmp/v2.err"
rc=$?
check "verify exits 1 (rc $rc)" test $rc -eq 1
check "the arm64 image's gpu check ran on gpu-arm64 only" \
  test "$(json "$tmp/v2.json" '",".join(k["runner"] for c in d["combos"] for k in c["checks"] if k["check"] == "gpu")')" = gpu-arm64

# --- negative: arm64 not verified -> no index, no tag, exit 1 ---------------------
section "promote with only amd64 verified: nothing is tagged"
verdict "$st" "$x86_id"
K promote "$tmp/m.toml" --state-dir "$st" --format json >"$tmp/p1.json" 2>"$tmp/p1.err"
rc=$?
check "promote exits 1 (rc $rc)" test $rc -eq 1
check "neither combination is tagged" test "$(json "$tmp/p1.json" 'd["tagged"]')" = 0
reason=$(json "$tmp/p1.json" '[c["reason"] for c in d["combos"] if c["id"] == "'$x86'"][0]')
echo "     reason: $reason"
check "the amd64 one says the index would name an unverified aarch64" \
  bash -c '[[ $1 == *"never names an unverified platform"* && $1 == *aarch64* && $1 == *"not verified"* ]]' _ "$reason"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.index.v1+json' "http://$addr/v2/$repo/manifests/cuda12.4-debian13-runtime")
check "the registry has no tag cuda12.4-debian13-runtime (HTTP $code)" test "$code" = 404

# --- both verified: the index -------------------------------------------------
section "promote with both verified: one OCI index under the tag"
verdict "$st" "$arm_id"
K promote "$tmp/m.toml" --state-dir "$st" --format json >"$tmp/p2.json" 2>"$tmp/p2.err"
rc=$?
check "promote exits 0 (rc $rc)" test $rc -eq 0
[[ $rc -eq 0 ]] || { cat "$tmp/p2.err"; json "$tmp/p2.json" '[c["reason"] for c in d["combos"]]'; }
check "both combinations tagged" test "$(json "$tmp/p2.json" 'd["tagged"]')" = 2
index=$(json "$tmp/p2.json" 'd["combos"][0]["index"]')
check "both name the same index ($index)" test "$(json "$tmp/p2.json" 'len(set(c["index"] for c in d["combos"]))')" = 1
skopeo inspect --raw --tls-verify=false "docker://$addr/$repo:cuda12.4-debian13-runtime" >"$tmp/index.json" 2>"$tmp/skopeo.err"
check "skopeo reads the tag" test $? -eq 0
check "the tag names an OCI image index" test "$(json "$tmp/index.json" 'd["mediaType"]')" = application/vnd.oci.image.index.v1+json
check "whose digest is the one promote reported" test "sha256:$(sha256sum <"$tmp/index.json" | cut -d' ' -f1)" = "$index"
check "listing linux/amd64 and linux/arm64" test "$(json "$tmp/index.json" '",".join(sorted(m["platform"]["os"] + "/" + m["platform"]["architecture"] for m in d["manifests"]))')" = linux/amd64,linux/arm64
for p in amd64 arm64; do
  digest=$(json "$tmp/index.json" '[m["digest"] for m in d["manifests"] if m["platform"]["architecture"] == "'$p'"][0]')
  want=$([[ $p == amd64 ]] && echo "$x86_id" || echo "$arm_id")
  skopeo inspect --raw --tls-verify=false "docker://$addr/$repo@$digest" >"$tmp/m-$p.json"
  check "the $p manifest is the verified $p image" test "$(json "$tmp/m-$p.json" 'd["config"]["digest"]')" = "$want"
  K audit "docker://$addr/$repo:cuda12.4-debian13-runtime" --platform "linux/$p" --no-cache --format json >"$tmp/audit-$p.json" 2>"$tmp/audit-$p.err"
  rc=$?
  [[ $rc -le 1 ]] || cat "$tmp/audit-$p.err"
  want_p=$([[ $p == amd64 ]] && echo x86_64 || echo aarch64)
  check "kiln audit --platform linux/$p reads the $p image (rc $rc)" \
    test "$(json "$tmp/audit-$p.json" 'd["images"][0]["config_digest"]')" = "$want"
  check "and calls it $want_p" test "$(json "$tmp/audit-$p.json" 'd["images"][0]["platform"]')" = "$want_p"
done

section "done"
[[ $fails -eq 0 ]] && { echo "multiarch: all passed"; exit 0; }
echo "multiarch: $fails check(s) failed"
exit 1
