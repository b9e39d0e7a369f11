#!/usr/bin/env python3
"""Loads a root filesystem directory into the Docker engine as a one-layer
image of any platform (`docker load` of an archive written here).

    scripts/load-rootfs.py --arch arm64 --tag kiln/debian:12-arm64 \
        [--label K=V ...] [--env K=V ...] [--cmd /bin/bash] [--comment TEXT] ROOTFS

Why not `docker import --platform`: Docker 20.10's daemon ignores the
platform of an import (the image gets the daemon's own architecture), so an
arm64 root filesystem would be called amd64 and `docker run --platform
linux/arm64` / `POST /build?platform=linux/arm64` would refuse it. A loaded
image keeps the config it comes with, architecture included, on any engine.

The layer is GNU tar's (numeric owners, xattrs), as scripts/make-bases.sh
makes it for `docker import`. Prints the image id. Exit 2 on bad input.
"""
import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", required=True, choices=["amd64", "arm64"])
    ap.add_argument("--tag", action="append", required=True, help="repository:tag (repeatable)")
    ap.add_argument("--label", action="append", default=[], help="KEY=VALUE")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE")
    ap.add_argument("--cmd", default="", help="the image's CMD (one program, no arguments)")
    ap.add_argument("--comment", default="", help="the layer's history comment")
    ap.add_argument("--created", default="", help="RFC 3339 time (default now)")
    ap.add_argument("rootfs")
    a = ap.parse_args()
    if not os.path.isdir(a.rootfs):
        print(f"load-rootfs: {a.rootfs} is not a directory", file=sys.stderr)
        return 2
    for kv in a.label + a.env:
        if "=" not in kv:
            print(f"load-rootfs: '{kv}' is not KEY=VALUE", file=sys.stderr)
            return 2
    created = a.created or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    with tempfile.TemporaryDirectory(prefix="kiln-load-rootfs.", dir=os.environ.get("TMPDIR", "/var/tmp")) as d:
        layer = os.path.join(d, "layer.tar")
        subprocess.run(["tar", "-C", a.rootfs, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-cf", layer, "."],
                       check=True)
        h = hashlib.sha256()
        with open(layer, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        diff_id = "sha256:" + h.hexdigest()
        config = {
            "architecture": a.arch,
            "os": "linux",
            "created": created,
            "config": {
                "Env": a.env,
                "Cmd": [a.cmd] if a.cmd else None,
                "Labels": dict(kv.split("=", 1) for kv in a.label),
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": "kiln scripts/load-rootfs.py", "comment": a.comment}],
        }
        config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
        config_hex = hashlib.sha256(config_bytes).hexdigest()
        with open(os.path.join(d, config_hex + ".json"), "wb") as f:
            f.write(config_bytes)
        with open(os.path.join(d, "manifest.json"), "w") as f:
            json.dump([{"Config": config_hex + ".json", "RepoTags": a.tag, "Layers": ["layer.tar"]}], f)
        archive = os.path.join(d, "image.tar")
        subprocess.run(["tar", "-C", d, "-cf", archive, "manifest.json", config_hex + ".json", "layer.tar"], check=True)
        os.unlink(layer)  # the archive holds it; half the disk for the rest
        subprocess.run(["docker", "load", "-q", "-i", archive], check=True, stdout=subprocess.DEVNULL)
    print("sha256:" + config_hex)
    return 0


if __name__ == "__main__":
    sys.exit(main())
