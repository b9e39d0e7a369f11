#!/usr/bin/env python3
"""Builds a small torch wheel, or an installed torch, for tests/survey: the
files `kiln catalog check` reads (torch/version.py, the dist-info METADATA
with Requires-Dist pins, torch/lib/libtorch_cuda.so) and those that make it a
wheel (WHEEL, RECORD). The library is any nvcc-built shared object.

  make_wheel.py wheel OUT_DIR VERSION CUDA LIB [REQUIREMENT...]   -> prints the wheel's path
  make_wheel.py site  PREFIX  VERSION CUDA LIB [REQUIREMENT...] [--installed NAME==VER...]
"""
import base64, hashlib, os, sys, zipfile


def files(version, cuda, lib, reqs, site=False):
    # PyPI's own CUDA build installs as torch-2.11.0.dist-info, Version 2.11.0
    # (no local part), while torch/version.py still says 2.11.0+cu130.
    dist_version = version.split("+")[0] if site else version
    meta = ["Metadata-Version: 2.4", "Name: torch", f"Version: {dist_version}",
            "Summary: Tensors and Dynamic neural networks in Python with strong GPU acceleration",
            "Requires-Python: >=3.10", "Requires-Dist: filelock", "Requires-Dist: typing-extensions>=4.10.0"]
    meta += [f"Requires-Dist: {r}" for r in reqs]
    meta += ['Requires-Dist: opt-einsum>=3.3; extra == "opt-einsum"', "", "PyTorch long description (not headers)",
             "Requires-Dist: not-a-header==1.0", ""]
    dist = f"torch-{dist_version}.dist-info"
    out = {
        "torch/__init__.py": b"",
        "torch/version.py": (f"from typing import Optional\n\n__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip']\n"
                             f"__version__ = '{version}'\ndebug = False\ncuda: Optional[str] = '{cuda}'\n"
                             f"git_version = '0000000000000000000000000000000000000000'\nhip: Optional[str] = None\n"
                             f"xpu: Optional[str] = None\n").encode(),
        "torch/lib/libtorch_cuda.so": open(lib, "rb").read(),
        f"{dist}/METADATA": "\n".join(meta).encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bdist_wheel (0.45.1)\nRoot-Is-Purelib: false\nTag: cp312-cp312-manylinux_2_28_x86_64\n",
    }
    return dist, out


def record(dist, out):
    lines = []
    for name, data in out.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    lines.append(f"{dist}/RECORD,,")
    return ("\n".join(lines) + "\n").encode()


def main():
    mode, where, version, cuda, lib, *rest = sys.argv[1:]
    installed = []
    if "--installed" in rest:
        i = rest.index("--installed")
        rest, installed = rest[:i], rest[i + 1:]
    dist, out = files(version, cuda, lib, rest, site=(mode == "site"))
    out[f"{dist}/RECORD"] = record(dist, out)
    if mode == "wheel":
        path = os.path.join(where, f"torch-{version}-cp312-cp312-manylinux_2_28_x86_64.whl")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in out.items():
                z.writestr(name, data)
        print(path)
        return
    site = os.path.join(where, "lib", "python3.12", "site-packages")
    for name, data in out.items():
        os.makedirs(os.path.dirname(os.path.join(site, name)), exist_ok=True)
        with open(os.path.join(site, name), "wb") as f:
            f.write(data)
    for spec in installed:  # nvidia_cudnn_cu13-9.19.0.56.dist-info, as pip names it
        name, ver = spec.split("==")
        d = os.path.join(site, f"{name.replace('-', '_')}-{ver}.dist-info")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "METADATA"), "w") as f:
            f.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n")
    print(site)


main()
