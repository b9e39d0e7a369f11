#!/usr/bin/env python3
"""Writes the test's stand-in wheels: small pure-Python distributions that
play torch and its nvidia-* dependencies (no PyPI here, no GPU).

  Kiln.Demo_Core 1.0+cu130  -- a local version tag like torch's 2.11.0+cu130;
                               a name with '.', '_' and capitals; package data,
                               a data-scheme file (share/...), a plain script
                               (#!python), a file in the shared namespace dir
                               kilnns/
  kiln-demo-app 2.0         -- Requires-Dist on the core (pinned with +cu130),
                               a dependency behind a false marker and one behind
                               an extra (neither installed), a console-script
                               entry point, its own file in kilnns/

Usage: make_standins.py OUTDIR
"""
import base64
import hashlib
import os
import sys
import zipfile


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def wheel(out, dist, version, files, metadata_extra="", entry_points=""):
    name = dist.replace("-", "_").replace(".", "_")
    info = f"{name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{metadata_extra}"
    files = dict(files)
    files[f"{info}/METADATA"] = meta
    files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: kiln-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if entry_points:
        files[f"{info}/entry_points.txt"] = entry_points
    path = os.path.join(out, f"{name}-{version}-py3-none-any.whl")
    lines = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for fname, text in files.items():
            data = text.encode()
            info_z = zipfile.ZipInfo(fname, (2026, 1, 1, 0, 0, 0))
            info_z.external_attr = (0o100755 if "/scripts/" in fname else 0o100644) << 16
            zf.writestr(info_z, data)
            lines.append(record_line(fname, data))
        lines.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(lines) + "\n")
    return path


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    core_data = "Kiln.Demo_Core-1.0+cu130.data".replace(".", "_", 2).replace("Kiln_Demo_Core", "Kiln_Demo_Core")
    core_data = "Kiln_Demo_Core-1.0+cu130.data"
    wheel(out, "Kiln.Demo_Core", "1.0+cu130", {
        "kiln_demo_core/__init__.py": "import importlib.resources as r\nVALUE = 'core-1.0+cu130'\n"
                                      "def greeting():\n    return r.files(__name__).joinpath('data/greeting.txt').read_text().strip()\n",
        "kiln_demo_core/data/greeting.txt": "hello from the wheelhouse\n",
        "kilnns/core_part.py": "PART = 'core'\n",
        f"{core_data}/scripts/kiln-demo-raw": "#!python\nimport kiln_demo_core\nprint('raw', kiln_demo_core.VALUE)\n",
        f"{core_data}/data/share/kiln-demo/notice.txt": "data scheme file\n",
    })
    wheel(out, "kiln-demo-app", "2.0", {
        "kiln_demo_app/__init__.py": "import kiln_demo_core, kilnns.core_part, kilnns.app_part\n"
                                     "def main():\n    print('kiln-demo', kiln_demo_core.VALUE, kiln_demo_core.greeting(),"
                                     " kilnns.core_part.PART, kilnns.app_part.PART)\n",
        "kilnns/app_part.py": "PART = 'app'\n",
    }, metadata_extra=("Requires-Dist: kiln.demo-core==1.0+cu130\n"
                       "Requires-Dist: kiln-never-installed; python_version < \"3\"\n"
                       "Provides-Extra: gpu\n"
                       "Requires-Dist: kiln-extra-only; extra == \"gpu\"\n"),
       entry_points="[console_scripts]\nkiln-demo = kiln_demo_app:main\n")


if __name__ == "__main__":
    main()
