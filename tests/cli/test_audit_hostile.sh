#!/usr/bin/env bash
# `kiln audit` on hostile images: what it writes and holds
# is bounded, and it never blocks. Every image is built here: a sparse layer
# member claiming 2 GB named libcudart.so.12, a 2 MB gzip layer that expands
# to 2 GB, a FIFO, a socket and a device as blobs of an OCI layout, a FIFO as
# the IMAGE itself. Each run is under an outer `timeout` (a hang fails, exit
# 124), with a fresh TMPDIR, and under `ulimit -f` (RLIMIT_FSIZE): a file
# written past that size kills kiln with SIGXFSZ (exit 153), so exit 2 proves
# nothing larger was written. Usage: test_audit_hostile.sh PATH/TO/kiln
set -uo pipefail
kiln=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}

# run_kiln FSIZE_KB ARGS...: kiln under a timeout, a fresh TMPDIR and a file
# size limit; exit code in $rc, stderr in $tmp/err.txt, TMPDIR in $tmpdir.
run_kiln() {
  local fsize=$1; shift
  tmpdir=$(mktemp -d "$tmp/tmpdir.XXXX")
  ( ulimit -f "$fsize"; TMPDIR=$tmpdir exec timeout -k 5 60 "$kiln" "$@" ) >"$tmp/out.txt" 2>"$tmp/err.txt"
  rc=$?
}
says() { grep -qF -- "$1" "$tmp/err.txt" || { echo "  stderr lacks: $1"; sed 's/^/  | /' "$tmp/err.txt" | head -5; false; }; }
tmp_empty() { [ -z "$(ls -A "$tmpdir")" ] && [ "$(du -sk "$tmpdir" | cut -f1)" -le 64 ]; }

# oci_layout DIR LAYER_FILE [MEDIA_TYPE]: an OCI layout directory around one
# layer blob, with correct digests; prints the layer digest.
oci_layout() {
  python3 - "$@" <<'PY'
import hashlib, json, os, sys
out, layer = sys.argv[1], sys.argv[2]
media = sys.argv[3] if len(sys.argv) > 3 else "application/vnd.oci.image.layer.v1.tar"
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def put(data):
    h = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{h}", "wb").write(data)
    return "sha256:" + h
h = hashlib.sha256()
with open(layer, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
ldigest, lsize = "sha256:" + h.hexdigest(), os.path.getsize(layer)
os.replace(layer, f"{out}/blobs/sha256/{ldigest[7:]}")
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [ldigest]}}).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                  "layers": [{"mediaType": media, "digest": ldigest, "size": lsize}]}).encode()
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                            "digest": put(man), "size": len(man)}]}
open(f"{out}/index.json", "w").write(json.dumps(index))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
print(ldigest)
PY
}

# --- a sparse member claiming 2 GB named libcudart.so.12 (a ~10 KB layer) ---
mkdir -p "$tmp/sparse/usr/lib"
truncate -s 2G "$tmp/sparse/usr/lib/libcudart.so.12"
printf '\177ELF' | dd of="$tmp/sparse/usr/lib/libcudart.so.12" conv=notrunc status=none
tar --sparse --format=gnu -cf "$tmp/sparse.tar" -C "$tmp/sparse" usr
rm -rf "$tmp/sparse"
check "sparse layer is small" test "$(stat -c %s "$tmp/sparse.tar")" -lt 65536
digest=$(oci_layout "$tmp/sparse-img" "$tmp/sparse.tar")
run_kiln 65536 audit "$tmp/sparse-img"  # nothing over 64 MiB may be written
check "sparse 2 GB member: exit 2 (not killed for writing, not hung)" test "$rc" -eq 2
check "sparse: says why" says "sparse holes included"
check "sparse: names the member" says "usr/lib/libcudart.so.12"
check "sparse: names the layer digest" says "${digest#sha256:}"
check "sparse: names the image" says "$tmp/sparse-img: error:"
check "sparse: names the flag" says "--max-expansion"
check "sparse: nothing left in TMPDIR" tmp_empty

# --- a 2 MB gzip layer whose libcudart.so.12 expands to 2 GB ----------------
# Concatenated gzip members (which gunzip and libarchive read as one
# stream): a tar header, 128 x 16 MiB of zeros, the end of the tar.
python3 - "$tmp/bomb.tar.gz" <<'PY'
import gzip, sys, tarfile
size = 2 << 30
info = tarfile.TarInfo("usr/lib/x86_64-linux-gnu/libcudart.so.12")
info.size = size
chunk = gzip.compress(b"\0" * (16 << 20), compresslevel=9)
with open(sys.argv[1], "wb") as f:
    f.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
    for _ in range(size // (16 << 20)):
        f.write(chunk)
    f.write(gzip.compress(b"\0" * 1024))  # end-of-archive blocks
PY
check "gzip bomb is about 2 MB" test "$(stat -c %s "$tmp/bomb.tar.gz")" -lt $((3 << 20))
digest=$(oci_layout "$tmp/bomb-img" "$tmp/bomb.tar.gz" application/vnd.oci.image.layer.v1.tar+gzip)
# The guard stops the layer at 256 MiB + 100 x its stored bytes (~290 MiB):
# nothing near 2 GB; with --max-expansion 2, at about 260 MiB.
run_kiln $((384 << 10)) audit "$tmp/bomb-img"
check "gzip bomb: exit 2 (not killed for writing, not hung)" test "$rc" -eq 2
check "gzip bomb: says why" says "decompression bomb"
check "gzip bomb: names the member" says "usr/lib/x86_64-linux-gnu/libcudart.so.12"
check "gzip bomb: names the layer digest" says "${digest#sha256:}"
check "gzip bomb: nothing left in TMPDIR" tmp_empty
run_kiln $((384 << 10)) audit --max-expansion 2 --format json "$tmp/bomb-img"
check "gzip bomb, --max-expansion 2: exit 2" test "$rc" -eq 2
check "gzip bomb: JSON names the error" python3 -c "
import json,sys; j=json.load(open(sys.argv[1])); e=j['images'][0]['error']; sys.exit(0 if 'over 2x' in e and 'libcudart.so.12' in e else 1)" "$tmp/out.txt"
# A member over --max-member-size is refused before a byte is read.
run_kiln 65536 audit --max-member-size 1MiB "$tmp/bomb-img"
check "--max-member-size: exit 2" test "$rc" -eq 2
check "--max-member-size: says so" says "over the limit of 1048576 bytes"
check "--max-member-size: refused before reading" says "refused before reading"
check "--max-member-size: nothing left in TMPDIR" tmp_empty

# --- blobs that are not regular files: refused, never opened ----------------
python3 - "$tmp/small.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    data = b"ID=debian\n"
    info = tarfile.TarInfo("etc/os-release"); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
PY
digest=$(oci_layout "$tmp/fifo-img" "$tmp/small.tar")
blob="$tmp/fifo-img/blobs/sha256/${digest#sha256:}"
cp -r "$tmp/fifo-img" "$tmp/ok-img"
run_kiln 65536 audit "$tmp/ok-img"
check "the layout itself is fine: exit 0" test "$rc" -eq 0

rm "$blob" && mkfifo "$blob"
run_kiln 65536 audit "$tmp/fifo-img"
check "FIFO blob: exit 2, not blocked (124)" test "$rc" -eq 2
check "FIFO blob: says so" says "is a FIFO, not a regular file"
check "FIFO blob: names it" says "${digest#sha256:}"

rm "$blob" && ln -s /dev/zero "$blob"
run_kiln 65536 audit "$tmp/fifo-img"
check "device blob (symlink to /dev/zero): exit 2, not read forever" test "$rc" -eq 2
check "device blob: says so" says "is a character device"

rm "$blob"
# bound by its relative name: an absolute one may pass the 108-byte sun_path limit
(cd "$(dirname "$blob")" && python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$(basename "$blob")")
run_kiln 65536 audit "$tmp/fifo-img"
check "socket blob: exit 2" test "$rc" -eq 2
check "socket blob: says so" says "is a socket"

rm "$blob" && mkfifo "$blob"
run_kiln 65536 check-driver --driver 580.95.05 "$tmp/fifo-img"
check "check-driver, FIFO blob: exit 2" test "$rc" -eq 2
mkfifo "$tmp/image.fifo"
run_kiln 65536 audit "$tmp/image.fifo"
check "FIFO as the IMAGE: exit 2, not blocked" test "$rc" -eq 2
check "FIFO as the IMAGE: says so" says "is a FIFO"
ln -s /dev/zero "$tmp/image.tar"
run_kiln 65536 audit "$tmp/image.tar"
check "device as the IMAGE: exit 2" test "$rc" -eq 2
check "device as the IMAGE: says so" says "is a character device"

# --- the same in a tar: a FIFO member named as a blob -----------------------
python3 - "$tmp/ok-img" "$tmp/fifo-member.tar" <<'PY'
import json, os, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
layer = json.load(open(json.load(open(f"{src}/index.json"))["manifests"][0]["digest"].replace("sha256:", f"{src}/blobs/sha256/")))["layers"][0]["digest"]
with tarfile.open(out, "w") as t:
    for root, _, files in os.walk(src):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            if rel == "blobs/sha256/" + layer[7:]:
                info = tarfile.TarInfo(rel); info.type = tarfile.FIFOTYPE
                t.addfile(info)
            else:
                t.add(path, rel)
PY
# --no-cache: the FIFO keeps the name of a layer kiln has read (and cached) above.
run_kiln 65536 audit --no-cache "$tmp/fifo-member.tar"
check "FIFO member as a blob in a tar: exit 2" test "$rc" -eq 2
check "FIFO member: says so" says "is a FIFO, not a regular file"

echo "audit hostile: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
