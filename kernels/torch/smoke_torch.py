#!/usr/bin/env python3
"""kiln smoke check for images with Python torch.

Same JSON schema and exit codes as kiln-smoke (kernels/README.md):
0 every required section passed, 1 a check failed, 2 bad usage, 3 no usable GPU.
Sections: env, matmul, conv2d, amp.
"""
import argparse
import json
import math
import socket
import sys
import time

SECTIONS = ["env", "matmul", "conv2d", "amp"]
SCHEMA = "kiln-smoke/1"


class Section:
    def __init__(self, name, required):
        self.name, self.required = name, required
        self.status, self.errors, self.notes, self.data = "skipped", [], [], {}
        self.duration_s = 0.0

    def fail(self, msg):
        self.errors.append(msg)
        self.status = "fail"

    def pass_unless_failed(self):
        if self.status != "fail":
            self.status = "pass"

    def to_json(self):
        return {"status": self.status, "required": self.required, "duration_s": self.duration_s,
                "errors": self.errors, "notes": self.notes, "data": self.data}


def version_matches(expected, found):
    """'9.19' matches 9.19.x; components compared as numbers."""
    try:
        e = [int(x) for x in expected.split(".")]
        f = [int(x) for x in found.split(".")]
    except (ValueError, AttributeError):
        return False
    return len(e) <= len(f) and f[: len(e)] == e


def cudnn_string(v):
    if v is None:
        return None
    if v >= 90000:
        return f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
    return f"{v // 1000}.{v % 1000 // 100}.{v % 100}"


def norm_err(got, ref, scale):
    """max |got - ref| / (|a|.|b|): the normalised error kiln-smoke uses."""
    import torch
    err = (got.double().cpu() - ref).abs() / scale.clamp_min(1e-30)
    if not bool(torch.isfinite(err).all()):
        return math.inf
    return float(err.max())


def check(s, label, err, tol, out):
    out.update({"max_norm_err": err, "tolerance": tol, "ok": err <= tol})
    if not err <= tol:
        s.fail(f"{label}: max normalised error {err:.3g} over tolerance {tol:.3g}")


def run_env(torch, args, s, usable):
    d = s.data
    d["torch_version"] = torch.__version__
    d["cuda_available"] = torch.cuda.is_available()
    d["cuda_version"] = torch.version.cuda
    d["cudnn_available"] = torch.backends.cudnn.is_available()
    d["cudnn_version"] = cudnn_string(torch.backends.cudnn.version()) if d["cudnn_available"] else None
    d["devices"] = []
    if usable:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            d["devices"].append({"index": i, "name": p.name,
                                 "capability": "%d.%d" % torch.cuda.get_device_capability(i),
                                 "memory_mib": p.total_memory >> 20})
        d["arch_list"] = torch.cuda.get_arch_list()
    for what, want, got in (("CUDA", args.expect_cuda, d["cuda_version"]),
                            ("cuDNN", args.expect_cudnn, d["cudnn_version"]),
                            ("torch", args.expect_torch, torch.__version__.split("+")[0])):
        if want and not version_matches(want, got or ""):
            s.fail(f"{what} version mismatch: expected {want}, loaded {got}")
    if usable and not d["cudnn_available"]:
        s.fail("torch sees CUDA but not cuDNN")
    if not usable:
        if s.status != "fail":
            s.status = "skipped"
        s.notes.append("no usable GPU: torch.cuda.is_available() is False")
        return
    s.pass_unless_failed()


def time_matmul(torch, n, iters=10):
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        torch.matmul(a, b)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        torch.matmul(a, b)
    stop.record()
    stop.synchronize()
    return 2.0 * n ** 3 * iters / (start.elapsed_time(stop) / 1e3) / 1e12


def run_matmul(torch, args, s):
    a, b = torch.randn(512, 448), torch.randn(448, 384)
    for dtype, name, tol in ((torch.float32, "fp32", 1e-5), (torch.bfloat16, "bf16", 1.6e-2)):
        ad, bd = a.to(dtype).double(), b.to(dtype).double()
        got = a.to(dtype).cuda() @ b.to(dtype).cuda()
        out = {}
        check(s, f"matmul {name}", norm_err(got, ad @ bd, ad.abs() @ bd.abs()), tol, out)
        s.data[name] = out
    s.data["bf16_size"] = args.gemm_size
    s.data["bf16_tflops"] = time_matmul(torch, args.gemm_size)
    s.pass_unless_failed()


def run_conv2d(torch, args, s):
    torch.backends.cudnn.benchmark = True  # what training scripts set; exercises cuDNN's autotuner
    s.data["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    F = torch.nn.functional
    shapes = [((2, 3, 32, 32), (8, 3, 3, 3), 1, 1), ((1, 16, 28, 28), (32, 16, 5, 5), 2, 2),
              ((4, 8, 17, 23), (16, 8, 1, 1), 1, 0)]
    s.data["shapes"] = []
    for xs, ws, stride, pad in shapes:
        x, w = torch.randn(xs), torch.randn(ws)
        ref = F.conv2d(x.double(), w.double(), stride=stride, padding=pad)
        scale = F.conv2d(x.double().abs(), w.double().abs(), stride=stride, padding=pad)
        got = F.conv2d(x.cuda(), w.cuda(), stride=stride, padding=pad)
        out = {"x": list(xs), "w": list(ws)}
        check(s, f"conv2d {xs}", norm_err(got, ref, scale), 4e-3, out)  # TF32 allowed by default
        s.data["shapes"].append(out)
    s.pass_unless_failed()


def tiny_net(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).cuda()


def run_amp(torch, args, s):
    x = torch.randn(16, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (16,), device="cuda")
    for dtype, name in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
        net = tiny_net(torch)
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        # GradScaler matters for fp16 (gradients underflow); harmless for bf16.
        scaler = torch.amp.GradScaler("cuda")
        losses = []
        for _ in range(20):
            opt.zero_grad()
            with torch.autocast("cuda", dtype=dtype):
                out = net(x)
                loss = torch.nn.functional.cross_entropy(out, y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item())
        r = {"forward_dtype": str(out.dtype), "loss_first": losses[0], "loss_last": losses[-1],
             "scale": float(scaler.get_scale())}
        s.data[name] = r
        if out.dtype != dtype:
            s.fail(f"autocast {name}: forward ran in {out.dtype}")
        if not all(math.isfinite(v) for v in losses) or not losses[-1] < losses[0]:
            s.fail(f"autocast {name}: loss not finite or not decreasing ({losses[0]:.4f} -> {losses[-1]:.4f})")
    s.pass_unless_failed()


def finite(x):
    """JSON has no NaN/inf: write them as null, as kiln-smoke does."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--expect-cuda")
    p.add_argument("--expect-cudnn")
    p.add_argument("--expect-torch")
    p.add_argument("--only", default="")
    p.add_argument("--skip", default="")
    p.add_argument("--require")
    p.add_argument("--gemm-size", type=int, default=8192)
    p.add_argument("--output")
    p.add_argument("--compact", action="store_true")
    args = p.parse_args(argv)
    for flag in ("only", "skip", "require"):
        val = getattr(args, flag)
        names = [n for n in (val or "").split(",") if n]
        bad = [n for n in names if n not in SECTIONS]
        if bad:
            p.error(f"--{flag}: unknown section(s) {','.join(bad)}")
        setattr(args, flag, set(names) if val is not None else None)
    return args


def main(argv):
    t0 = time.monotonic()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args = parse_args(argv)
    selected = lambda n: (not args.only or n in args.only) and n not in args.skip
    sections = [Section(n, n in args.require if args.require is not None else selected(n)) for n in SECTIONS]
    gpu = {"usable": False, "device_count": 0, "error": None}
    build = {}
    try:
        import torch
        build["torch_version"] = torch.__version__
        gpu["usable"] = torch.cuda.is_available() and torch.cuda.device_count() > 0
        gpu["device_count"] = torch.cuda.device_count() if gpu["usable"] else 0
        if not gpu["usable"]:
            gpu["error"] = "torch.cuda.is_available() is False"
    except Exception as e:  # torch missing or broken is a failure of the image
        torch = None
        gpu["error"] = f"import torch failed: {e}"
        sections[0].fail(gpu["error"])

    runners = {"env": lambda s: run_env(torch, args, s, gpu["usable"]), "matmul": lambda s: run_matmul(torch, args, s),
               "conv2d": lambda s: run_conv2d(torch, args, s), "amp": lambda s: run_amp(torch, args, s)}
    for s in sections:
        if s.status == "fail":
            continue
        if not selected(s.name):
            s.notes.append("not selected (--only/--skip)")
        elif not gpu["usable"] and s.name != "env":
            s.notes.append(f"no usable GPU: {gpu['error']}")
        else:
            t = time.monotonic()
            try:
                runners[s.name](s)
            except Exception as e:
                s.fail(f"{type(e).__name__}: {e}")
            s.duration_s = time.monotonic() - t
        if not gpu["usable"] and s.status == "pass":  # never a pass without a GPU
            s.status = "skipped"

    req = [s for s in sections if s.required]
    if any(s.status == "fail" for s in req):
        code = 1
    elif not gpu["usable"]:
        code = 3
    elif not req or any(s.status != "pass" for s in req):
        code = 1
    else:
        code = 0
    summary = {k: [s.name for s in sections if s.status == k] for k in ("pass", "fail", "absent", "skipped")}
    summary["required"] = [s.name for s in req]
    doc = {"schema": SCHEMA, "tool": "smoke_torch.py", "tool_version": "0.1.0", "started_at": started,
           "host": socket.gethostname(), "verdict": {0: "pass", 3: "no-gpu"}.get(code, "fail"),
           "exit_code": code, "wall_s": time.monotonic() - t0, "gpu": gpu, "build": build,
           "expected": {"cuda": args.expect_cuda, "cudnn": args.expect_cudnn, "torch": args.expect_torch},
           "sections": {s.name: s.to_json() for s in sections}, "summary": summary}
    text = json.dumps(finite(doc), indent=None if args.compact else 2, allow_nan=False, default=str)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
