#!/usr/bin/env python3
"""Prints the table of scripts/gpu-smoke.sh and judges cases (a)-(d).

usage: gpu_smoke_table.py PREFIX GPU_NAME TOTAL_S case=rc:wall_s ...
Reads PREFIX-<case>.json. Exit 0 when every case behaved as expected and
cuBLAS BF16 reached 70% of torch.matmul; 1 otherwise.
"""
import json
import sys

CASES = [
    # case, label, build, expected exit, what proves it
    ("a-sm90", "(a) full suite", "sm_90 SASS+PTX", 0, "every section passes"),
    ("b-sm75-sass", "(b) sm_75 SASS only", "75-real", 1, "arch fails: no kernel image"),
    ("c-compute75-ptx", "(c) compute_75 PTX", "75-virtual", 0, "passes via PTX JIT"),
    ("d-wrong-cudnn", "(d) wrong cuDNN", "sm_90", 1, "env fails naming both"),
    ("torch-cpp", "(t) kiln-smoke-torch", "LibTorch", 0, "every section passes"),
    ("torch-py", "(p) smoke_torch.py", "python torch", 0, "every section passes"),
]
RATIO_GOAL = 0.70
WALL_GOAL_S = 20.0


def load(prefix, case):
    try:
        with open(f"{prefix}-{case}.json") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"_error": str(e)}


def sec(doc, name):
    return doc.get("sections", {}).get(name, {})


def errors(doc, name):
    return " | ".join(sec(doc, name).get("errors", []))


def judge(case, rc, doc):
    """(ok, one-line detail) for one case."""
    if "_error" in doc:
        return False, f"no JSON: {doc['_error']}"
    statuses = {n: s["status"] for n, s in doc.get("sections", {}).items()}
    failed = [n for n, s in statuses.items() if s == "fail"]
    if case in ("a-sm90", "torch-cpp", "torch-py"):
        ok = rc == 0 and all(s == "pass" for s in statuses.values())
        detail = "all pass: " + ",".join(statuses) if ok else \
            "; ".join(f"{n}={statuses[n]}: {errors(doc, n)[:160]}" for n in statuses if statuses[n] != "pass")
        if case == "a-sm90":
            src = {d.get("code_source") for d in sec(doc, "arch").get("data", {}).get("devices", [])}
            detail += f" (arch: {','.join(sorted(x for x in src if x))})"
        return ok, detail
    if case == "b-sm75-sass":
        err = errors(doc, "arch")
        ok = rc == 1 and statuses.get("arch") == "fail" and "cudaErrorNoKernelImageForDevice" in err
        return ok, f"arch={statuses.get('arch')}: {err[:150]}"
    if case == "c-compute75-ptx":
        devs = sec(doc, "arch").get("data", {}).get("devices", [])
        src = ",".join(d.get("code_source", "?") for d in devs)
        ok = rc == 0 and all(s == "pass" for s in statuses.values()) and src and all(
            d.get("code_source") == "ptx-jit" for d in devs)
        jit = devs[0] if devs else {}
        return ok, (f"arch={statuses.get('arch')} code_source={src} ptx_version={jit.get('ptx_version')} "
                    f"binary_version={jit.get('binary_version')}" + (f"; failed: {failed}" if failed else ""))
    if case == "d-wrong-cudnn":
        err = errors(doc, "env")
        want = (doc.get("expected") or {}).get("cudnn") or "?"
        found = sec(doc, "env").get("data", {}).get("libraries", {}).get("cudnn") or "?"
        ok = rc == 1 and statuses.get("env") == "fail" and want in err and found in err
        return ok, f"env={statuses.get('env')}: {err[:150]}"
    return False, "unknown case"


def main(argv):
    prefix, gpu, total = argv[1], argv[2], float(argv[3])
    runs = {}
    for arg in argv[4:]:
        case, rest = arg.split("=", 1)
        rc, wall = rest.split(":", 1)
        runs[case] = (int(rc) if rc.lstrip("-").isdigit() else None, float(wall or 0))
    docs = {c[0]: load(prefix, c[0]) for c in CASES}
    print(f"kiln smoke suite on {gpu} — whole script {total:.1f} s")
    print(f"{'case':24} {'build':16} {'exit':>4} {'want':>4}  {'ok':4} detail")
    all_ok = True
    for case, label, build, want, _ in CASES:
        rc, wall = runs.get(case, (None, 0))
        ok, detail = judge(case, rc, docs[case]) if rc is not None else (False, "not run (build failed)")
        all_ok &= ok
        print(f"{label:24} {build:16} {str(rc):>4} {want:>4}  {'PASS' if ok else 'FAIL':4} {detail}  [{wall:.1f} s]")

    a, py = docs["a-sm90"], docs["torch-py"]
    cub = (sec(a, "cublas").get("data", {}).get("devices") or [{}])[0]
    n = sec(a, "cublas").get("data", {}).get("perf_size")
    tf = {p: (cub.get(p) or {}).get("tflops") for p in ("fp32", "fp16", "bf16")}
    torch_bf16 = sec(py, "matmul").get("data", {}).get("bf16_tflops")
    print()
    print(f"GEMM {n}^3 TFLOP/s (cuBLAS, device 0): " + ", ".join(
        f"{p} {v:.1f}" if v else f"{p} n/a" for p, v in tf.items()))
    if tf["bf16"] and torch_bf16:
        ratio = tf["bf16"] / torch_bf16
        ok = ratio >= RATIO_GOAL
        all_ok &= ok
        print(f"torch.matmul bf16 same size: {torch_bf16:.1f} TFLOP/s -> cuBLAS/torch ratio {ratio:.2f} "
              f"(goal >= {RATIO_GOAL:.2f}: {'PASS' if ok else 'FAIL'})")
    else:
        all_ok = False
        print("torch.matmul bf16 ratio: n/a (a number is missing)")
    mem = (sec(a, "memory").get("data", {}).get("devices") or [{}])[0]
    print("copy GB/s (device 0, pinned, %s MiB): H2D %s, D2H %s, D2D %s" % (
        (mem.get("bytes") or 0) >> 20, *(f"{mem[k]:.1f}" if mem.get(k) else "n/a"
                                         for k in ("h2d_gbps", "d2h_gbps", "d2d_gbps"))))
    nccl = sec(a, "nccl").get("data", {})
    if nccl:
        print(f"NCCL all-reduce: {nccl.get('ranks')} rank(s), {(nccl.get('bytes') or 0) >> 20} MiB, "
              f"algbw {nccl.get('algbw_gbps') or 0:.1f} GB/s, busbw {nccl.get('busbw_gbps') or 0:.1f} GB/s")
    conv = (sec(a, "cudnn").get("data", {}).get("devices") or [{}])[0].get("conv2d", [])
    if conv:
        print("cuDNN algos: " + ", ".join(c.get("algo", "?") for c in conv))
    libs = sec(a, "env").get("data", {})
    if libs.get("libraries"):
        print("loaded: " + ", ".join(f"{k} {v} ({(libs.get('library_paths') or {}).get(k, '?')})"
                                     for k, v in libs["libraries"].items() if k in ("cublas", "cudnn", "nccl")))
    wall = a.get("wall_s")
    if wall is not None:
        print(f"suite wall time (a): {wall:.2f} s in-process, {runs.get('a-sm90', (0, 0))[1]:.2f} s with "
              f"process start (goal < {WALL_GOAL_S:.0f} s: {'PASS' if wall < WALL_GOAL_S else 'MISSED'})")
        for name, s in a.get("sections", {}).items():
            print(f"    {name:8} {s.get('status'):8} {s.get('duration_s', 0):6.2f} s")
    print("RESULT:", "all cases as expected" if all_ok else "SOME CASES NOT AS EXPECTED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
