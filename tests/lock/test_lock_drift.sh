#!/usr/bin/env bash
# kiln lock, kiln drift and the drift policy at promotion (issue 17 items 1
# and 5) on the shared engine and registry, with a LOCAL apt repository
# standing in for Debian's mirror and for snapshot.debian.org (neither can be
# changed or reached from here; tests/lock/apt_server.py serves both):
#   - a one-package repository (kiln-drift-probe 1.0-1), signed with a
#     throw-away gpg key that the test's base image trusts;
#   - kiln lock pins the base by image id / registry digest and the apt
#     sources to the "snapshot" http://127.0.0.1:PORT/archive/debian/<ts>/;
#     a base that cannot be resolved is exit 2 naming it;
#   - two locked builds (the second --no-cache): kiln drift says the same
#     packages; the live "mirror" moving to 2.0-1 does not touch a locked build;
#   - unlocked, two builds around the mirror's change: kiln drift names
#     kiln-drift-probe 1.0-1 -> 2.0-1 and "same inputs"; promote --force of
#     the drifted rebuild under the existing tag is refused ([policy] drift);
#   - kiln lock --update moves the snapshot and prints the change.
# usage: test_lock_drift.sh KILN RECORD_VERDICT
set -uo pipefail
kiln=$1 record_verdict=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
source "$src/tests/support/checks.sh"
passed=0 failed=0

for tool in docker dpkg-deb apt-ftparchive gpg curl; do
  command -v $tool >/dev/null || { echo "FAIL: $tool not installed (scripts/install-deps.sh installs it)"; exit 1; }
done
# What the test drives it starts itself, as the other engine tests do: CI runs
# on a fresh clone, and a test that skips when run first proves nothing.
sock=$(cd "$src" && scripts/start-engine.sh) || { echo "FAIL: no engine (scripts/start-engine.sh)"; exit 1; }
export DOCKER_HOST=unix://$sock
(cd "$src" && scripts/make-bases.sh 12) >/dev/null 2>&1 || { echo "FAIL: scripts/make-bases.sh 12"; exit 1; }
(cd "$src" && scripts/start-registry.sh) >/dev/null || { echo "FAIL: no registry (scripts/start-registry.sh)"; exit 1; }

id=$$
work=$(mktemp -d /tmp/kiln-lock-drift.XXXXXX)
base="lock-$id/debian:12-key"
pushed="127.0.0.1:5000/lock-$id/base:12"
server=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null
  docker rmi -f "$base" "$pushed" >/dev/null 2>&1
  for img in $(docker images -q "kiln.local/lock-drift-$id" 2>/dev/null | sort -u); do docker rmi -f "$img" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- a throw-away signing key, and a base image that trusts it ------------
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "kiln drift test <test@kiln.invalid>" ed25519 sign never 2>/dev/null
gpg --batch --armor --export >"$work/key.asc"
mkdir "$work/basectx"
cp "$work/key.asc" "$work/basectx/kiln-drift-test.asc"
printf 'FROM kiln/debian:12\nCOPY kiln-drift-test.asc /etc/apt/trusted.gpg.d/kiln-drift-test.asc\n' >"$work/basectx/Dockerfile"
docker build -q -t "$base" "$work/basectx" >/dev/null || { echo "FAIL: test base"; exit 1; }

# --- the repositories: a package, Packages, a signed Release --------------
make_deb() {  # VERSION -> $work/debs/kiln-drift-probe_VERSION_all.deb
  local d=$work/pkg-$1
  mkdir -p "$d/DEBIAN" "$d/usr/share/kiln-drift-probe" "$work/debs"
  printf 'Package: kiln-drift-probe\nVersion: %s\nArchitecture: all\nMaintainer: kiln tests <test@kiln.invalid>\nDescription: stand-in package for the drift test\n' "$1" >"$d/DEBIAN/control"
  echo "$1" >"$d/usr/share/kiln-drift-probe/version"
  dpkg-deb -Zgzip --root-owner-group --build "$d" "$work/debs/kiln-drift-probe_$1_all.deb" >/dev/null
}
make_repo() {  # DIR VERSION: a bookworm repository holding that version only
  local r=$1
  rm -rf "$r"
  mkdir -p "$r/pool/main"
  cp "$work/debs/kiln-drift-probe_$2_all.deb" "$r/pool/main/"
  for c in main contrib non-free; do mkdir -p "$r/dists/bookworm/$c/binary-amd64"; done
  (cd "$r" && apt-ftparchive packages pool/main >dists/bookworm/main/binary-amd64/Packages)
  for c in contrib non-free; do : >"$r/dists/bookworm/$c/binary-amd64/Packages"; done
  (cd "$r/dists/bookworm" && apt-ftparchive -o APT::FTPArchive::Release::Codename=bookworm \
     -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Components="main contrib non-free" \
     -o APT::FTPArchive::Release::Architectures=amd64 release . >../Release.tmp &&
   mv ../Release.tmp Release && gpg --batch --yes --clearsign -o InRelease Release)
}
make_deb 1.0-1
make_deb 2.0-1
ts=20261201T000000Z
make_repo "$work/repo/archive/debian/$ts" 1.0-1   # the "snapshot": never changes
make_repo "$work/repo/live" 1.0-1                  # the "mirror": moves to 2.0-1 below

python3 "$src/tests/lock/apt_server.py" "$work/repo" "$work/port" 2>"$work/server.log" &
server=$!
for _ in $(seq 300); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(cat "$work/port" 2>/dev/null) || { echo "FAIL: apt_server did not start"; cat "$work/server.log"; exit 1; }
snapshots="http://127.0.0.1:$port/archive/debian/"

# --- data dir: kiln's templates, recipes with a stand-in runtime package --
mkdir -p "$work/data"
cp -r "$src/recipes" "$work/data/recipes"
ln -s "$src/templates" "$work/data/templates"
sed -i 's/^runtime = \["libcudart11.0", "libcublas11", "libcublaslt11"\]/runtime = ["kiln-drift-probe"]/' "$work/data/recipes/install/cuda.toml"
check "stand-in recipe" grep -q 'runtime = \["kiln-drift-probe"\]' "$work/data/recipes/install/cuda.toml"
k() { "$kiln" --no-config --data-dir "$work/data" "$@"; }

matrix=$work/m/drift.toml
mkdir -p "$work/m"
cat >"$matrix" <<TOML
name = "lock-drift-$id"
targets = ["T4"]
[axes]
cuda = ["11.8"]
os = ["debian12"]
flavor = ["runtime"]
[policy]
verify = ["static"]
drift = "refuse"
[registry]
url = "127.0.0.1:5000"
repository = "lock-$id/drift"
insecure = true
[tags]
templates = ["cuda{cuda}-{os}-{flavor}"]
[cache]
apt = "http://127.0.0.1:$port"
[[base]]
os = "debian12"
image = "$base"
[runners.local]
backend = "engine"
gpu = "none"
TOML
lock=$work/m/drift.lock
state=$work/state
export KILN_NOW=2026-12-01T00:00:00Z

# --- kiln lock -------------------------------------------------------------
check "lock writes" k lock "$matrix" --debian-snapshot "$snapshots"
base_id=$(docker image inspect -f '{{.Id}}' "$base")
check "lock: header comment" grep -q '^# MATRIX.lock' "$lock"
check "lock: base by image id" grep -q "image_id = \"$base_id\"" "$lock"
check "lock: snapshot url" grep -q "url = \"${snapshots}$ts/\"" "$lock"
k plan "$matrix" --format json >"$work/plan.json"
check "plan: locked snapshot" json_assert "$work/plan.json" "[c for c in j['combos'] if c['status']=='valid'][0]['locked']['apt_snapshot'] == '${snapshots}$ts/'"
cp "$lock" "$work/lock.saved"

# a base that cannot be resolved: exit 2, naming it
sed "s#^image = \"$base\"#image = \"127.0.0.1:5000/lock-$id/absent:1\"#" "$matrix" >"$work/m/bad.toml"
k lock "$work/m/bad.toml" --debian-snapshot "$snapshots" >"$work/bad.out" 2>&1
check "unresolvable base: exit 2" test $? -eq 2
check "unresolvable base: named" grep -q "lock-$id/absent:1" "$work/bad.out"
check "unresolvable base: no lock written" test ! -e "$work/m/bad.lock"

# a base in the registry: its manifest digest (the engine's RepoDigest, then the registry alone)
docker tag "$base" "$pushed" && docker push -q "$pushed" >/dev/null 2>&1
sed "s#^image = \"$base\"#image = \"$pushed\"#" "$matrix" >"$work/m/reg.toml"
check "registry base: lock" k lock "$work/m/reg.toml" --debian-snapshot "$snapshots"
want=$(curl -sI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://127.0.0.1:5000/v2/lock-$id/base/manifests/12" | tr -d '\r' | sed -n 's/^Docker-Content-Digest: //Ip')
check "registry base: digest = registry's" grep -q "digest = \"$want\"" "$work/m/reg.lock"
docker rmi "$pushed" >/dev/null 2>&1
rm -f "$work/m/reg.lock"
check "registry-only base: lock" k lock "$work/m/reg.toml" --debian-snapshot "$snapshots"
check "registry-only base: source registry" grep -q 'source = "registry"' "$work/m/reg.lock"
check "registry-only base: same digest" grep -q "digest = \"$want\"" "$work/m/reg.lock"

# --- two locked builds: the same packages ----------------------------------
img="kiln.local/lock-drift-$id:cuda11.8-debian12-runtime"
probe() { docker run --rm --network none "$img" dpkg-query -W -f '${Version}' kiln-drift-probe; }
k build "$matrix" --state-dir "$state" >"$work/build1.txt" 2>&1
check "locked build 1" test $? -eq 0
check "locked build 1: probe 1.0-1" test "$(probe)" = 1.0-1
make_repo "$work/repo/live" 2.0-1   # the mirror moves; the snapshot does not
check "locked build 2 (no cache)" k build "$matrix" --state-dir "$state" --no-cache -q
check "locked build 2: still 1.0-1 (snapshot)" test "$(probe)" = 1.0-1
k drift "$matrix" --state-dir "$state" --format json >"$work/drift1.json"
check "drift locked: exit 0" test $? -eq 0
check "drift locked: same packages" json_assert "$work/drift1.json" "j['combos'][0]['verdict'] in ('same-packages', 'identical') and j['combos'][0]['packages'] == []"

# --- kiln lock --update moves the snapshot, and says so ---------------------
KILN_NOW=2026-12-02T00:00:00Z k lock "$matrix" --update --debian-snapshot "$snapshots" >"$work/update.txt"
check "update: exit 0" test $? -eq 0
check "update: snapshot diff" grep -q "~ snapshot debian12: ${snapshots}$ts/ -> ${snapshots}20261202T000000Z/" "$work/update.txt"
check "update: lock moved" grep -q "20261202T000000Z" "$lock"
cp "$work/lock.saved" "$lock"

# --- unlocked: the mirror changes between two builds of the same inputs ----
mv "$lock" "$work/lock.off"
make_repo "$work/repo/live" 1.0-1
check "unlocked build 1" k build "$matrix" --state-dir "$state" --no-cache -q
check "unlocked build 1: 1.0-1" test "$(probe)" = 1.0-1
u1=$(docker image inspect -f '{{.Id}}' "$img")
"$record_verdict" "$state/state.db" "$u1"
k promote "$matrix" --state-dir "$state" --format json >"$work/promote1.json" 2>"$work/promote1.err"
check "promote 1: tagged" json_assert "$work/promote1.json" "j['combos'][0]['state'] in ('tagged', 'tagged-without-record')"
tag_before=$(curl -sI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://127.0.0.1:5000/v2/lock-$id/drift/manifests/cuda11.8-debian12-runtime" | tr -d '\r' | sed -n 's/^Docker-Content-Digest: //Ip')

make_repo "$work/repo/live" 2.0-1
check "unlocked build 2 (no cache)" k build "$matrix" --state-dir "$state" --no-cache -q
check "unlocked build 2: 2.0-1" test "$(probe)" = 2.0-1
u2=$(docker image inspect -f '{{.Id}}' "$img")
k drift "$matrix" --state-dir "$state" --format json >"$work/drift2.json"
check "drift unlocked: exit 1" test $? -eq 1
check "drift unlocked: drifted" json_assert "$work/drift2.json" "j['drifted'] and j['combos'][0]['verdict'] == 'drifted'"
check "drift unlocked: names the package and versions" json_assert "$work/drift2.json" \
  "{'kind':'deb','name':'kiln-drift-probe','before':'1.0-1','after':'2.0-1'} in j['combos'][0]['packages']"
check "drift unlocked: cause same inputs" json_assert "$work/drift2.json" "'same inputs' in j['combos'][0]['cause']"
k drift "$matrix" --state-dir "$state" >"$work/drift2.txt"
check "drift table: the change" grep -q "~ deb kiln-drift-probe 1.0-1 -> 2.0-1" "$work/drift2.txt"

# --- promote of the drifted rebuild under the existing tag: refused ---------
"$record_verdict" "$state/state.db" "$u2"
k promote "$matrix" --state-dir "$state" --force --format json >"$work/promote2.json" 2>"$work/promote2.err"
check "promote drifted: exit 1" test $? -eq 1
check "promote drifted: not tagged" json_assert "$work/promote2.json" "j['combos'][0]['state'] == 'not-tagged'"
check "promote drifted: reason names the package" json_assert "$work/promote2.json" \
  "'drift' in j['combos'][0]['reason'] and 'kiln-drift-probe 1.0-1 -> 2.0-1' in j['combos'][0]['reason']"
tag_after=$(curl -sI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://127.0.0.1:5000/v2/lock-$id/drift/manifests/cuda11.8-debian12-runtime" | tr -d '\r' | sed -n 's/^Docker-Content-Digest: //Ip')
check "promote drifted: tag unchanged" test -n "$tag_before" -a "$tag_before" = "$tag_after"

echo "test_lock_drift: $passed passed, $failed failed"
if ((failed)); then
  echo "--- server log (tail)"; tail -5 "$work/server.log"
  for f in "$work"/*.json "$work"/*.err "$work"/*.txt "$work"/*.out; do [[ -s $f ]] && { echo "--- $f"; head -c 3000 "$f"; echo; }; done
  ls "$state/logs"/*/ 2>/dev/null && tail -20 "$state"/logs/*/*.log
fi
exit $((failed > 0))
