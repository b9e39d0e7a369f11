#!/usr/bin/env python3
"""Writes the hostile fuzz_image seeds into tests/fuzz/seeds/image/
(first byte: fuzz_image's mode; 1 = one layer tar in an OCI layout, 5 = the
same read from a file). Needs GNU tar for the sparse member.

  sparse-libcudart(-file): a ~10 KB layer whose libcudart.so.12 claims 2 GB (sparse)
  gzip-bomb: a ~50 KB gzip layer whose libcudart.so.12 is 48 MiB of zeros
"""
import gzip, os, subprocess, sys, tarfile, tempfile

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "image")
os.makedirs(out, exist_ok=True)

with tempfile.TemporaryDirectory() as d:
    lib = os.path.join(d, "usr/lib/libcudart.so.12")
    os.makedirs(os.path.dirname(lib))
    with open(lib, "wb") as f:
        f.write(b"\x7fELF")
        f.truncate(2_000_000_000)
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", os.path.join(d, "l.tar"), "-C", d, "usr"], check=True)
    sparse = open(os.path.join(d, "l.tar"), "rb").read()
for name, mode in (("sparse-libcudart", 1), ("sparse-libcudart-file", 5)):
    open(os.path.join(out, name), "wb").write(bytes([mode]) + sparse)

size = 48 << 20
info = tarfile.TarInfo("usr/lib/x86_64-linux-gnu/libcudart.so.12")
info.size = size
chunk = gzip.compress(b"\0" * (16 << 20), compresslevel=9, mtime=0)
bomb = gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT), mtime=0) + chunk * (size // (16 << 20)) + gzip.compress(b"\0" * 1024, mtime=0)
open(os.path.join(out, "gzip-bomb"), "wb").write(bytes([1]) + bomb)
for n in sorted(os.listdir(out)):
    print(n, os.path.getsize(os.path.join(out, n)), file=sys.stderr)
