#!/usr/bin/env bash
# kiln sbom on the offline CUDA image (built by offline_cuda_build / the quick
# start): every Debian package dpkg-query lists inside the running container
# (the test runs it; kiln never does) is in the SBOM with the same version,
# the CUDA packages among them; the SPDX document is checked structurally
# (tests/sbom/check_spdx.py) and the CycloneDX one too. Usage: sbom_offline.sh KILN
set -uo pipefail
kiln=$1
here=$(cd "$(dirname "$0")" && pwd)
img=${KILN_SBOM_IMAGE:-kiln.local/offline:cuda12.4-debian13-runtime}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() { local n=$1; shift; if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $n"; fi; }

if ! docker image inspect "$img" >/dev/null 2>&1; then
  echo "sbom: $img is not on the engine (run offline_cuda_build or scripts/quickstart.sh); skipped"
  exit 77
fi

"$kiln" sbom "$img" -o "$work/spdx.json" 2>"$work/err"
check "kiln sbom exit 0" test $? -eq 0
"$kiln" sbom "docker-daemon:$img" --format cyclonedx >"$work/cdx.json" 2>>"$work/err"
check "kiln sbom --format cyclonedx exit 0" test $? -eq 0
cat "$work/err"

# What dpkg itself says inside the container (no network, read-only root).
docker run --rm --network none --read-only "$img" dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\n' \
  | awk '$1 == "ii" {print $2 " " $3}' | sort >"$work/dpkg.txt"
check "dpkg-query listed packages" test -s "$work/dpkg.txt"
python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
for p in doc["packages"]:
    if p["SPDXID"].startswith("SPDXRef-deb-"):
        print(p["name"], p["versionInfo"])
' "$work/spdx.json" | sort >"$work/sbom.txt"
check "the SBOM's Debian packages are dpkg-query's, same versions" diff -u "$work/dpkg.txt" "$work/sbom.txt"
cuda=$(grep -E '^(libcudart|libcublas|libnccl|libcufft|libcurand|libcusparse|libcusolver|libnvjitlink|libnvrtc)[0-9a-z.-]* ' "$work/dpkg.txt" | wc -l)
echo "sbom: $(wc -l <"$work/dpkg.txt") Debian packages, $cuda of them CUDA libraries"
check "CUDA packages present (libcudart, cuBLAS, NCCL...)" test "$cuda" -ge 3
check "libcudart12's version as dpkg has it" grep -qE '^libcudart12 12\.4\.' "$work/sbom.txt"
id=$(docker image inspect "$img" --format '{{.Id}}')
check "the image package names the image id" python3 -c '
import json, sys
img = json.load(open(sys.argv[1]))["packages"][0]
sys.exit(0 if img["SPDXID"] == "SPDXRef-Image" and "sha256:" + img["checksums"][0]["checksumValue"] == sys.argv[2] else 1)
' "$work/spdx.json" "$id"
check "SPDX structurally valid" python3 "$here/check_spdx.py" "$work/spdx.json"
check "CUDA components from the audit" python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
cuda = {p["name"]: p["versionInfo"] for p in doc["packages"] if p["SPDXID"].startswith("SPDXRef-cuda-")}
print("sbom: CUDA components", cuda)
sys.exit(0 if cuda.get("cuda-runtime", "").startswith("12.4") and "cublas" in cuda and "nccl" in cuda else 1)
' "$work/spdx.json"
check "CycloneDX: every deb a component with its purl" python3 -c '
import json, sys
cdx, spdx = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert cdx["bomFormat"] == "CycloneDX" and cdx["specVersion"] == "1.5", "header"
assert cdx["serialNumber"].startswith("urn:uuid:"), "serial"
assert len(cdx["components"]) == len(spdx["packages"]) - 1, "count"
refs = {c["bom-ref"] for c in cdx["components"]}
assert len(refs) == len(cdx["components"]), "unique bom-refs"
assert set(cdx["dependencies"][0]["dependsOn"]) == refs, "dependencies"
debs = [c for c in cdx["components"] if c["purl"].startswith("pkg:deb/debian/")]
assert debs and all("distro=debian-13" in c["purl"] for c in debs), "purls"
' "$work/cdx.json" "$work/spdx.json"

echo "$passed passed, $failed failed"
test "$failed" -eq 0
