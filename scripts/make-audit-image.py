#!/usr/bin/env python3
"""Writes a `docker save` archive (classic <id>/layer.tar names) from host
files, for audit tests and bench/audit.sh: no engine needed.

  make-audit-image.py OUT.tar --layer usr/local/cuda/lib64=/usr/local/cuda/lib64 \
      --text usr/local/cuda/version.json='{"cuda":{"version":"13.0.2"}}' \
      --env CUDA_VERSION=13.0.2 [--tag kiln/bench:1]

Each --layer is one layer (a directory copied recursively, symlinks kept, or
one file); all --text files go into a last small layer.
"""
import argparse, hashlib, io, json, os, sys, tarfile, tempfile


def add_tree(tar, dest, src):
    src = os.path.realpath(src)  # the top may be a link (/usr/local/cuda/lib64 -> lib)
    if os.path.isdir(src) and not os.path.islink(src):
        for root, dirs, files in os.walk(src):
            dirs.sort()
            rel = os.path.relpath(root, src)
            base = dest if rel == "." else f"{dest}/{rel}"
            for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                tar.add(os.path.join(root, name), f"{base}/{name}", recursive=False)
    else:
        tar.add(src, dest, recursive=False)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_layer(fill, tmpdir):
    fd, path = tempfile.mkstemp(dir=tmpdir, suffix=".tar")
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
        fill(t)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layer", action="append", default=[], help="DEST=SRC (one layer each)")
    ap.add_argument("--text", action="append", default=[], help="DEST=CONTENT (all in one last layer)")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--tag", default="kiln/audit-fixture:1")
    a = ap.parse_args()
    tmpdir = os.path.dirname(os.path.abspath(a.out)) or "."
    layers = []
    for spec in a.layer:
        dest, src = spec.split("=", 1)
        layers.append(write_layer(lambda t, d=dest.strip("/"), s=src: add_tree(t, d, s), tmpdir))
    if a.text:
        def texts(t):
            for spec in a.text:
                dest, content = spec.split("=", 1)
                data = content.encode()
                info = tarfile.TarInfo(dest.strip("/"))
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
        layers.append(write_layer(texts, tmpdir))
    diff_ids = ["sha256:" + sha256_file(p) for p in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": a.env},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{d[7:]}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [a.tag], "Layers": names}]).encode()
    with tarfile.open(a.out, "w", format=tarfile.PAX_FORMAT) as out:
        for name, data in ((cfg_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        for name, path in zip(names, layers):
            out.add(path, name)
            os.unlink(path)
    print(f"{a.out}: {len(layers)} layers, {os.path.getsize(a.out) / 1e9:.2f} GB", file=sys.stderr)


if __name__ == "__main__":
    main()
