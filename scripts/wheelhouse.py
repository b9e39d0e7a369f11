#!/usr/bin/env python3
"""Repack installed Python distributions into wheels: a wheelhouse from a venv.

A venv (or any site-packages) holds installed packages, not wheel files. This
script turns the requirement closure of the given names back into valid
wheels, so that an image build can `pip install --no-index --find-links W`
from them (air-gapped) or use W/simple/ as an index (`--simple-index`).

    wheelhouse.py --site /opt/torch/.venv/lib/python3.12/site-packages --out W torch
    wheelhouse.py --site /opt/torch/.venv --out W --simple-index W/simple torch
    wheelhouse.py --check W

Per distribution (its *.dist-info/RECORD says which files are its own, so a
namespace directory such as nvidia/ shared by many distributions is split
correctly):
  - files inside site-packages go in as they are (no __pycache__);
  - files outside it (RECORD paths like ../../../bin/x) go into
    NAME-VER.data/scripts/ (bin/) with their shebang turned back into
    `#!python`, or NAME-VER.data/data/<path under the prefix>; console and
    GUI entry-point wrappers are left out (the installer writes them again);
  - INSTALLER, REQUESTED, direct_url.json and the old RECORD are left out; a
    fresh RECORD with sha256 (urlsafe base64, no padding) and sizes is written;
  - the WHEEL file is kept; its Tag lines give the file name's tags (a
    missing WHEEL gets a sane one: py3-none-any for pure Python, else the
    running interpreter's cpXY-cpXY-linux_<arch>).

Requires-Dist is followed with environment markers evaluated for the running
interpreter (run it with the venv's Python version); extras only when asked
(`torch[opt]`). Python 3 standard library only, plus `packaging` if
importable, else pip's vendored copy.
"""

import argparse
import base64
import csv
import hashlib
import html
import io
import os
import re
import sys
import sysconfig
import time
import urllib.parse
import zipfile
from concurrent.futures import ProcessPoolExecutor
from email.parser import Parser

default_environment = Requirement = Version = None


def load_packaging(site=None):
    """`packaging`, else pip's vendored copy -- this Python's, or at last the
    venv's own (a system python3 without pip can still read a venv with pip)."""
    global default_environment, Requirement, Version
    for extra in ([None, site] if site else [None]):
        if extra:
            sys.path.append(extra)
        for mod in ("packaging", "pip._vendor.packaging"):
            try:
                markers = __import__(mod + ".markers", fromlist=["x"])
                reqs = __import__(mod + ".requirements", fromlist=["x"])
                vers = __import__(mod + ".version", fromlist=["x"])
            except ImportError:
                continue
            default_environment, Requirement, Version = markers.default_environment, reqs.Requirement, vers.Version
            return
    sys.exit("wheelhouse: error: neither `packaging` nor pip's vendored copy can be imported "
             "(run it with the venv's python, or install python3-packaging)")


def marker_environment(site):
    """Markers evaluated for the venv's Python, not the one running this
    script: its version from pyvenv.cfg or the lib/pythonX.Y path."""
    env = default_environment()
    prefix = os.path.realpath(os.path.join(site, "..", "..", ".."))
    full = None
    cfg = os.path.join(prefix, "pyvenv.cfg")
    if os.path.exists(cfg):
        with open(cfg) as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip() in ("version", "version_info"):
                    full = value.strip()
    m = re.search(r"python(\d+)\.(\d+)", site)
    if m and not (full and full.startswith(f"{m.group(1)}.{m.group(2)}.")):
        full = f"{m.group(1)}.{m.group(2)}.0"
    if full:
        parts = full.split(".")
        env["python_full_version"] = full
        env["python_version"] = ".".join(parts[:2])
        env["implementation_version"] = full
    return env

LEFT_OUT = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}
CHUNK = 1 << 20
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def normalize(name):
    """PEP 503 project name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def filename_part(text):
    """A name or version as it appears in a wheel file name (PEP 427/491)."""
    return re.sub(r"[-_.]+", "_", text) if text else text


def b64_digest(h):
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


class Dist:
    """One installed distribution: its dist-info directory and metadata."""

    def __init__(self, site, info_dir):
        self.site = site
        self.info_dir = info_dir  # name inside site, e.g. "PyYAML-6.0.dist-info"
        path = os.path.join(site, info_dir, "METADATA")
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            self.meta = Parser().parse(f, headersonly=True)
        self.name = self.meta["Name"]
        self.version = self.meta["Version"]
        self.key = normalize(self.name)
        self.requires = self.meta.get_all("Requires-Dist") or []

    def entry_point_scripts(self):
        """Names of console/GUI scripts the installer generates."""
        path = os.path.join(self.site, self.info_dir, "entry_points.txt")
        names, section = set(), None
        if not os.path.exists(path):
            return names
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]").strip()
                elif "=" in line and section in ("console_scripts", "gui_scripts"):
                    names.add(line.split("=", 1)[0].strip())
        return names


def find_site(path):
    """site-packages itself, or the one inside a venv/prefix."""
    if os.path.isdir(path) and any(e.endswith(".dist-info") for e in os.listdir(path)):
        return path
    for lib in ("lib", "lib64"):
        base = os.path.join(path, lib)
        if os.path.isdir(base):
            for py in sorted(os.listdir(base)):
                cand = os.path.join(base, py, "site-packages")
                if py.startswith("python") and os.path.isdir(cand):
                    return cand
    sys.exit(f"wheelhouse: error: {path}: no site-packages with *.dist-info found")


def load_dists(site):
    dists = {}
    for entry in sorted(os.listdir(site)):
        if entry.endswith(".dist-info") and os.path.exists(os.path.join(site, entry, "METADATA")):
            d = Dist(site, entry)
            if d.key in dists:
                print(f"wheelhouse: warning: {d.name} installed twice ({dists[d.key].info_dir}, {entry}); "
                      f"using {dists[d.key].info_dir}", file=sys.stderr)
                continue
            dists[d.key] = d
    return dists


def closure(dists, wanted, env):
    """The distributions the requirements need, with markers evaluated."""
    todo = [(Requirement(w), "command line") for w in wanted]
    chosen, missing = {}, []  # key -> extras already followed
    while todo:
        req, why = todo.pop()
        key = normalize(req.name)
        d = dists.get(key)
        if d is None:
            missing.append(f"{req} (required by {why})")
            continue
        if req.specifier and not req.specifier.contains(Version(d.version), prereleases=True):
            print(f"wheelhouse: warning: {d.name} {d.version} does not satisfy {req} (required by {why})",
                  file=sys.stderr)
        done = chosen.get(key)
        extras = set(req.extras)
        if done is not None and extras <= done:
            continue
        first, new = done is None, extras - (done or set())
        chosen[key] = (done or set()) | extras
        for line in d.requires:
            r = Requirement(line)
            if r.marker is not None:
                base = r.marker.evaluate(dict(env, extra=""))
                extra = any(r.marker.evaluate(dict(env, extra=e)) for e in new)
                if not (extra or (first and base)):
                    continue
            elif not first:
                continue
            todo.append((r, f"{d.name} {d.version}"))
    return [dists[k] for k in sorted(chosen)], missing


def read_record(d):
    path = os.path.join(d.site, d.info_dir, "RECORD")
    if not os.path.exists(path):
        raise SystemExit(f"wheelhouse: error: {d.name}: {d.info_dir}/RECORD is missing; cannot tell its files")
    with open(path, newline="", encoding="utf-8") as f:
        return [row[0] for row in csv.reader(f) if row]


def wheel_tags(d):
    """(WHEEL file text, file-name tag triple); a sane WHEEL when it is missing."""
    path = os.path.join(d.site, d.info_dir, "WHEEL")
    text = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    tags = []
    if text:
        tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
        purelib = "Root-Is-Purelib: true" in text
    if not tags:
        files = read_record(d)
        pure = not any(f.endswith((".so", ".pyd", ".dylib")) or ".so." in f for f in files)
        if pure:
            tags = ["py3-none-any"]
        else:
            cp = f"cp{sys.version_info[0]}{sys.version_info[1]}"
            plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
            tags = [f"{cp}-{cp}-{plat}"]
        purelib = pure
        if not text:
            text = ("Wheel-Version: 1.0\nGenerator: kiln-wheelhouse\n"
                    f"Root-Is-Purelib: {'true' if pure else 'false'}\n" + "".join(f"Tag: {t}\n" for t in tags))
    parts = [t.split("-") for t in tags]
    triple = tuple(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))
    return text, triple, purelib


def plan_members(d):
    """[(archive name, source path, is_script)] for one distribution."""
    site = os.path.realpath(d.site)
    prefix = os.path.realpath(os.path.join(site, "..", "..", ".."))
    data_dir = f"{filename_part(d.name)}-{d.version}.data"
    wrappers = d.entry_point_scripts()
    members, seen = [], set()
    for rel in read_record(d):
        if "__pycache__" in rel.split("/"):
            continue
        src = os.path.normpath(os.path.join(site, rel))
        src = os.path.join(os.path.realpath(os.path.dirname(src)), os.path.basename(src))
        if rel.startswith(d.info_dir + "/") and rel.split("/", 1)[1] in LEFT_OUT:
            continue
        inside = os.path.commonpath([site, os.path.dirname(src)]) == site
        if inside:
            name = os.path.relpath(src, site).replace(os.sep, "/")
            script = False
        else:
            under = os.path.relpath(src, prefix).replace(os.sep, "/")
            if under.startswith("../"):
                print(f"wheelhouse: warning: {d.name}: {rel} lies outside the prefix; left out", file=sys.stderr)
                continue
            if under.startswith(("bin/", "Scripts/")):
                base = under.split("/", 1)[1]
                if base in wrappers or base.removesuffix(".exe") in wrappers:
                    continue  # an entry-point wrapper: pip writes it again
                name, script = f"{data_dir}/scripts/{base}", True
            elif re.match(r"include/site/python[^/]+/[^/]+/", under):
                # pip's headers scheme in a venv: include/site/pythonX.Y/<dist>/
                name, script = f"{data_dir}/headers/{under.split('/', 4)[4]}", False
            else:
                name, script = f"{data_dir}/data/{under}", False
        if name in seen:
            continue
        if not os.path.isfile(src):
            print(f"wheelhouse: warning: {d.name}: {rel} is in RECORD but not installed; left out", file=sys.stderr)
            continue
        seen.add(name)
        members.append((name, src, script))
    return members


def script_bytes(src):
    """A script with an absolute interpreter shebang turned back into #!python."""
    with open(src, "rb") as f:
        data = f.read()
    if data.startswith(b"#!"):
        nl = data.find(b"\n")
        first = data[: nl if nl >= 0 else len(data)]
        if b"python" in first:
            data = b"#!python" + (data[nl:] if nl >= 0 else b"\n")
    return data


def add_bytes(zf, name, data, mode, compression):
    info = zipfile.ZipInfo(name, ZIP_EPOCH)
    info.external_attr = (mode & 0xFFFF) << 16
    info.compress_type = compression
    zf.writestr(info, data)
    h = hashlib.sha256(data)
    return [name, b64_digest(h), str(len(data))]


def add_file(zf, name, src, compression):
    st = os.stat(src)
    info = zipfile.ZipInfo(name, ZIP_EPOCH)
    info.external_attr = (st.st_mode & 0xFFFF) << 16
    info.compress_type = compression
    info.file_size = st.st_size
    h = hashlib.sha256()
    with open(src, "rb") as fin, zf.open(info, "w", force_zip64=st.st_size > (1 << 31)) as fout:
        while True:
            buf = fin.read(CHUNK)
            if not buf:
                break
            h.update(buf)
            fout.write(buf)
    return [name, b64_digest(h), str(st.st_size)]


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for buf in iter(lambda: f.read(CHUNK), b""):
            h.update(buf)
    return h.hexdigest()


def pack(site, info_dir, out, store):
    """Builds one wheel; returns (file name, bytes, files, sha256 hex, project)."""
    d = Dist(site, info_dir)
    wheel_text, (py, abi, plat), _ = wheel_tags(d)
    fname = f"{filename_part(d.name)}-{d.version.replace('-', '_')}-{py}-{abi}-{plat}.whl"
    dist_info = f"{filename_part(d.name)}-{d.version.replace('-', '_')}.dist-info"
    compression = zipfile.ZIP_STORED if store else zipfile.ZIP_DEFLATED
    tmp = os.path.join(out, "." + fname + ".part")
    rows = []
    with zipfile.ZipFile(tmp, "w", compression=compression, allowZip64=True) as zf:
        meta = []
        for name, src, script in plan_members(d):
            if name.startswith(d.info_dir + "/"):
                # the dist-info directory under the wheel's canonical name
                base = name.split("/", 1)[1]
                if base == "WHEEL":
                    continue
                meta.append((f"{dist_info}/{base}", src))
                continue
            if script:
                rows.append(add_bytes(zf, name, script_bytes(src), os.stat(src).st_mode, compression))
            else:
                rows.append(add_file(zf, name, src, compression))
        # dist-info last, as the wheel spec recommends (RECORD at the very end)
        for name, src in meta:
            rows.append(add_file(zf, name, src, compression))
        rows.append(add_bytes(zf, f"{dist_info}/WHEEL", wheel_text.encode(), 0o100644, compression))
        record = io.StringIO()
        w = csv.writer(record, lineterminator="\n")
        for row in rows:
            w.writerow(row)
        w.writerow([f"{dist_info}/RECORD", "", ""])
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", ZIP_EPOCH)
        info.external_attr = 0o100644 << 16
        info.compress_type = compression
        zf.writestr(info, record.getvalue())
    final = os.path.join(out, fname)
    os.replace(tmp, final)
    return fname, os.path.getsize(final), len(rows) + 1, file_sha256(final), d.key


def check_wheel(path):
    """Re-reads a wheel and verifies every RECORD line; returns problems."""
    problems = []
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        records = [n for n in names if n.endswith(".dist-info/RECORD") and n.count("/") == 1]
        if len(records) != 1:
            return [f"{len(records)} RECORD files"]
        rows = list(csv.reader(io.StringIO(zf.read(records[0]).decode("utf-8"))))
        listed = set()
        for row in rows:
            if not row:
                continue
            name, digest, size = (row + ["", ""])[:3]
            listed.add(name)
            if name == records[0]:
                continue
            if name not in names:
                problems.append(f"{name}: in RECORD, not in the wheel")
                continue
            h = hashlib.sha256()
            n = 0
            with zf.open(name) as f:
                for buf in iter(lambda: f.read(CHUNK), b""):
                    h.update(buf)
                    n += len(buf)
            if b64_digest(h) != digest:
                problems.append(f"{name}: sha256 differs from RECORD")
            if size and int(size) != n:
                problems.append(f"{name}: size {n} differs from RECORD's {size}")
        for name in names:
            if name not in listed and not name.endswith("/"):
                problems.append(f"{name}: not in RECORD")
        if not any(n.endswith(".dist-info/WHEEL") for n in names):
            problems.append("no WHEEL file")
    return problems


def check_one(path):
    return os.path.basename(path), check_wheel(path)


def write_simple_index(root, out, wheels):
    """PEP 503: ROOT/index.html and ROOT/<project>/index.html, links relative to `out`."""
    projects = {}
    for fname, _, _, sha, key in wheels:
        projects.setdefault(key, []).append((fname, sha))
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!DOCTYPE html>\n<html><body>\n")
        for key in sorted(projects):
            f.write(f'<a href="{key}/">{key}</a>\n')
        f.write("</body></html>\n")
    for key, files in projects.items():
        pdir = os.path.join(root, key)
        os.makedirs(pdir, exist_ok=True)
        rel = os.path.relpath(out, pdir).replace(os.sep, "/")
        with open(os.path.join(pdir, "index.html"), "w") as f:
            f.write(f"<!DOCTYPE html>\n<html><body>\n<h1>Links for {html.escape(key)}</h1>\n")
            for fname, sha in sorted(files):
                href = html.escape(f"{rel}/{urllib.parse.quote(fname)}#sha256={sha}", quote=True)
                f.write(f'<a href="{href}">{html.escape(fname)}</a>\n')
            f.write("</body></html>\n")


def human(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def run_check(out, jobs):
    wheels = sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".whl"))
    if not wheels:
        print(f"wheelhouse: error: {out}: no wheels", file=sys.stderr)
        return 2
    bad = 0
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        for name, problems in ex.map(check_one, wheels):
            print(f"{'ok ' if not problems else 'BAD'} {name}")
            for p in problems:
                print(f"    {p}")
            bad += bool(problems)
    print(f"checked {len(wheels)} wheels: {len(wheels) - bad} ok, {bad} bad")
    return 1 if bad else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("requirements", nargs="*", default=None, help="requirement names (default: torch)")
    ap.add_argument("--site", help="site-packages directory, or a venv/prefix holding one")
    ap.add_argument("--out", required=True, help="the wheelhouse directory (created)")
    ap.add_argument("--store", dest="store", action="store_true", default=True,
                    help="ZIP_STORED members (default: fast; the wheels are as large as the install)")
    ap.add_argument("--deflate", dest="store", action="store_false", help="compress members (ZIP_DEFLATED)")
    ap.add_argument("--simple-index", metavar="DIR", help="also write a PEP 503 simple index there")
    ap.add_argument("--check", action="store_true",
                    help="verify the RECORD hashes of every wheel in --out (after packing, or alone without --site)")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes")
    a = ap.parse_args(argv)

    if not a.site:
        if not a.check:
            ap.error("--site is required unless --check alone")
        return run_check(a.out, a.jobs)

    site = find_site(a.site)
    load_packaging(site)
    dists = load_dists(site)
    chosen, missing = closure(dists, a.requirements or ["torch"], marker_environment(site))
    if missing:
        for m in missing:
            print(f"wheelhouse: error: not installed in {site}: {m}", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    t0 = time.monotonic()
    # Largest first, so the biggest wheel (torch) is not the last one started.
    def size_of(d):
        try:
            return sum(os.path.getsize(src) for _, src, _ in plan_members(d))
        except OSError:
            return 0
    chosen.sort(key=size_of, reverse=True)
    results = []
    with ProcessPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futures = [ex.submit(pack, site, d.info_dir, a.out, a.store) for d in chosen]
        for fut in futures:
            r = fut.result()
            results.append(r)
            print(f"{r[0]}  {human(r[1])}  {r[2]} files", flush=True)
    total = sum(r[1] for r in results)
    secs = time.monotonic() - t0
    print(f"wheelhouse: {len(results)} wheels, {total} bytes ({human(total)}), {secs:.1f} s -> {a.out}")
    if a.simple_index:
        write_simple_index(a.simple_index, a.out, results)
        print(f"simple index: {a.simple_index} ({len(results)} projects)")
    if a.check:
        return run_check(a.out, a.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
