#!/usr/bin/env python3
"""The table of scripts/gpu-torch-e2e.sh: one row per matrix and combination.

usage: gpu-torch-table.py REGISTRY GPUS SECONDS OUT MATRIX...
Reads OUT/<matrix>-run.json (kiln run) and OUT/<matrix>-verdicts.json (the
ledger's checks with their detail), asks the registry which tags exist, prints the
table and says whether every case came out as expected (exit 0) or not (1).
Expected: gpu-torch's runtime and devel verified and tagged with their .kiln
record; in every control (gpu-torch-*) the runtime image refused and absent
from its repository (the shm control may pass: then it says so, as a measured
warning, and is not counted against the run).
"""
import json
import sys
import urllib.request

ACCEPT = ", ".join(["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def registry_tags(reg, repo):
    try:
        with urllib.request.urlopen(f"http://{reg}/v2/{repo}/tags/list", timeout=10) as r:
            return json.load(r).get("tags") or []
    except Exception:
        return []


def checks_of(verdicts, image_id, name):
    """The ledger's rows of one check for one image, newest last."""
    return [v for v in (verdicts or []) if v.get("image_id") == image_id and v.get("check") == name]


def gpu_sections(verdicts, image_id):
    """{section name: section} over the newest gpu check of the image: the
    CUDA suite's sections as they are, smoke_torch.py's as torch.<name>,
    LibTorch's as libtorch.<name>."""
    out = {}
    rows = checks_of(verdicts, image_id, "gpu")
    if not rows:
        return out
    det = rows[-1].get("detail") or {}
    for name, s in (det.get("sections") or {}).items():
        out[name] = s
    for prog in (det.get("programs") or {}):
        for name, s in ((det.get(prog) or {}).get("sections") or {}).items():
            out[f"{prog}.{name}"] = s
    return out


def num(x, fmt="{:.0f}"):
    try:
        return fmt.format(float(x))
    except (TypeError, ValueError):
        return "-"


def measurements(sections):
    env = (sections.get("env") or {}).get("data", {})
    tenv = (sections.get("torch.env") or {}).get("data", {})
    versions = [f"{k} {tenv[key]}" for k, key in (("torch", "torch_version"), ("cuDNN", "cudnn_version"),
                                                   ("NCCL", "nccl_version")) if tenv.get(key)]
    cublas = (sections.get("cublas") or {}).get("data", {})
    bf16 = [d.get("bf16", {}).get("tflops") for d in cublas.get("devices", []) if isinstance(d, dict)]
    bf16 = [x for x in bf16 if x]
    mm = (sections.get("torch.matmul") or {}).get("data", {})
    torch_bf16 = mm.get("bf16_tflops") or (mm.get("bf16") or {}).get("tflops") if isinstance(mm, dict) else None
    gemm = f"{num(min(bf16)) if bf16 else '-'} / {num(torch_bf16)}"
    ddp = sections.get("torch.ddp") or {}
    dd = ddp.get("data", {}) if ddp else {}
    ddp_s = f"{ddp.get('status', '-')} {dd.get('world_size', dd.get('ranks', '-'))} / {num((dd.get('all_reduce') or {}).get('busbw_gbps'))}" if ddp else "-"
    shm = sections.get("torch.shm") or {}
    sd = shm.get("data", {}) if shm else {}
    shm_s = f"{shm.get('status', '-')} {num((sd.get('size_bytes') or 0) / 2**20)} MiB" if shm else "-"
    devs = max(env.get("devices") or [], tenv.get("devices") or [], key=len)
    gpus = sorted({d.get("name", "?") for d in devs if isinstance(d, dict)})
    return ", ".join(versions) or "-", gemm, ddp_s, shm_s, f"{len(devs)} x {', '.join(gpus)}" if gpus else "-"


def main():
    reg, gpus, total, out = sys.argv[1:5]
    matrices = sys.argv[5:]
    print(f"PyTorch images through kiln run (Podman, devices mode) on {gpus}; registry http://{reg}; whole script {total} s")
    hdr = ("matrix / combination", "verified", "tags in registry", "loaded versions", "GEMM bf16 TF/s cuBLAS / torch",
           "DDP ranks / busbw GB/s", "shm", "GPUs", "why not")
    rows, verdicts = [], {}
    for m in matrices:
        run = load(f"{out}/{m}-run.json")
        ver = load(f"{out}/{m}-verdicts.json")
        if run is None:
            rows.append((m, "-", "-", "-", "-", "-", "-", "-", f"no kiln run JSON (see {m}-run.log)"))
            continue
        repo = f"kiln/{m}"
        present = registry_tags(reg, repo)
        for c in run.get("combos", []):
            if c.get("plan") != "valid":
                continue
            tags = [t.rsplit(":", 1)[-1] for t in c.get("tags", [])]
            in_reg = [t for t in tags if t in present]
            vers, gemm, ddp, shm, used = measurements(gpu_sections(ver, c.get("image_id")))
            rows.append((f"{m} / {c['id']}", "yes" if c.get("verified") else "no",
                         ", ".join(in_reg) or "none", vers, gemm, ddp, shm, used, ((c.get("reason") or c.get("why")) or "")[:220]))
            verdicts[(m, c["id"].rsplit("-", 1)[-1])] = (bool(c.get("verified")), bool(in_reg), (c.get("reason") or c.get("why")) or "")
    for r in [hdr] + rows:
        print(" | ".join(str(x) for x in r))
    ok = True
    for flavor in ("runtime", "devel") if "gpu-torch" in matrices else ():  # a controls-only call
        v = verdicts.get(("gpu-torch", flavor), (False, False, "missing"))
        good = v[0] and v[1]
        ok &= good
        print(f"expected: gpu-torch {flavor} verified and tagged -> {'yes' if good else 'NO'}")
    for m in (m for m in matrices if m != "gpu-torch"):
        v = verdicts.get((m, "runtime"))
        if v is None:
            print(f"expected: {m} runtime refused -> NOT RUN")
            ok = False
            continue
        refused = not v[0] and not v[1]
        if m.endswith("shm64") and not refused:
            print(f"measured: {m} runtime PASSED with /dev/shm at 64 MB: kept as a warning, not a refusal")
            continue
        ok &= refused
        print(f"expected: {m} runtime refused, not in the registry -> {'yes' if refused else 'NO'}  ({v[2][:160]})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
