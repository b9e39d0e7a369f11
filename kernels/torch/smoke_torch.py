#!/usr/bin/env python3
"""kiln smoke check for images with Python torch.

Same JSON schema and exit codes as kiln-smoke (kernels/README.md):
0 every required section passed, 1 a check failed, 2 bad usage, 3 no usable GPU.
Sections: env, matmul, conv2d, amp, ddp, shm.
Runs on torch >= 1.13 (Debian 12's python3-torch, for CI without a GPU).
"""
import argparse
import datetime
import glob
import json
import math
import os
import re
import socket
import sys
import tempfile
import time

SECTIONS = ["env", "matmul", "conv2d", "amp", "ddp", "shm"]
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
    except (ValueError, AttributeError):
        return False
    f = []
    for x in (found or "").split("+")[0].split("."):  # "1.13.0a0" (Debian's torch) -> 1, 13, 0
        digits = re.match(r"\d+", x)
        if not digits:
            break
        f.append(int(digits.group()))
    return len(e) <= len(f) and f[: len(e)] == e


def runtime_matches(expected, found):
    """A library's runtime version call names 3 components (9.19.0); a plan may
    name the wheel's 4 (9.19.0.56): the first 3 are compared here, the 4th
    against the wheel's dist-info."""
    return version_matches(".".join((expected or "").split(".")[:3]), found)


def nccl_string(v):
    """torch.cuda.nccl.version(): a tuple (2, 28, 9) since 1.x, an int 21409 before."""
    if v is None:
        return None
    if isinstance(v, (tuple, list)):
        return ".".join(str(x) for x in v[:3])
    v = int(v)
    if v >= 10000:  # NCCL_VERSION_CODE since 2.9: X*10000 + Y*100 + Z
        return f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
    return f"{v // 1000}.{v % 1000 // 100}.{v % 100}"


def mapped_libraries(stem):
    """Files of the process mapped under a soname stem ('libcudnn.so', 'libnccl.so'):
    what the loader really picked, whatever RPATH, LD_LIBRARY_PATH or LD_PRELOAD say."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6:
                    path = parts[5].strip()
                    if os.path.basename(path).startswith(stem) and path not in found:
                        found.append(path)
    except OSError:
        pass
    return found


def wheel_library(torch, package, soname):
    """The copy a pip install put next to torch: site-packages/nvidia/<package>/lib/<soname>,
    with the version its dist-info names (nvidia_cudnn_cu13-9.19.0.56.dist-info)."""
    site = os.path.dirname(os.path.dirname(os.path.abspath(torch.__file__)))
    libs = sorted(glob.glob(os.path.join(site, "nvidia", package, "lib", soname + "*")))
    if not libs:
        return None
    lib = libs[0]
    version = None
    for info in sorted(glob.glob(os.path.join(site, f"nvidia_{package}_cu*-*.dist-info"))):
        version = os.path.basename(info)[: -len(".dist-info")].split("-", 1)[1]
    return {"path": lib, "realpath": os.path.realpath(lib), "version": version}


def same_bytes(a, b):
    try:
        import filecmp
        return os.path.exists(b) and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def exercise_libraries(torch):
    """A cuDNN convolution and an NCCL all-reduce, so that both libraries (and
    cuDNN's sub-libraries, loaded lazily) are mapped when /proc/self/maps is read."""
    x = torch.randn(1, 3, 8, 8, device="cuda")
    w = torch.randn(4, 3, 3, 3, device="cuda")
    torch.nn.functional.conv2d(x, w).sum().item()
    t = torch.ones(16, device="cuda")
    import torch.cuda.nccl as nccl
    nccl.all_reduce([t])
    torch.cuda.synchronize()


def check_loaded(torch, s, what, stem, package, soname, expected, runtime_version):
    """The library really loaded against the expected version and the wheel's own copy."""
    loaded = mapped_libraries(stem)
    wheel = wheel_library(torch, package, soname)
    main = [p for p in loaded if os.path.basename(p).startswith(soname)] or loaded
    if wheel:  # a copy beside the wheel's (LD_PRELOAD, an earlier-loaded soname) is the one that binds: name it first
        main.sort(key=lambda p: same_file(p, wheel["path"]))
    s.data[f"{what}_loaded"] = {"paths": loaded, "version": runtime_version,
                                "wheel": wheel}
    if not main:
        s.fail(f"{what}: no {stem}* mapped after using it (/proc/self/maps)")
        return
    if wheel:
        if not same_file(main[0], wheel["path"]) and same_bytes(main[0], wheel["path"]):
            s.notes.append(f"{what}: loaded {main[0]}, a byte-identical copy of the wheel's {wheel['path']}")
        elif not same_file(main[0], wheel["path"]):
            s.fail(f"{what}: loaded {main[0]} ({runtime_version}), not the wheel's own copy "
                   f"{wheel['path']} ({wheel['version']}): something ahead of torch's RPATH "
                   "(LD_PRELOAD, an earlier-loaded soname) picks another library")
        # cuDNN's sub-libraries are dlopen'ed by soname: LD_LIBRARY_PATH comes
        # before libcudnn.so.9's RUNPATH ($ORIGIN), so they may come from
        # elsewhere. A byte-identical copy of the wheel's file (the same wheel
        # installed twice, e.g. a base image's CUDNN_ROOT on LD_LIBRARY_PATH)
        # is the same library: noted. Any other file fails.
        lib_dir = os.path.dirname(wheel["realpath"])
        strays = [p for p in loaded if os.path.dirname(os.path.realpath(p)) != lib_dir]
        different = [p for p in strays if not same_bytes(p, os.path.join(lib_dir, os.path.basename(p)))]
        for p in strays:
            if p not in different:
                s.notes.append(f"{what}: {p} loaded instead of the wheel's {os.path.join(lib_dir, os.path.basename(p))} "
                               "(byte-identical copy; something on LD_LIBRARY_PATH names another installation)")
        s.data[f"{what}_loaded"]["outside_wheel"] = [{"path": p, "identical_to_wheel": p not in different} for p in strays]
        if different:
            s.fail(f"{what}: {', '.join(different)} loaded from outside the wheel's {lib_dir} (not the wheel's bytes)")
        if expected and wheel["version"] and len(expected.split(".")) >= 4 and wheel["version"] != expected:
            s.fail(f"{what}: the wheel next to torch is {wheel['version']} ({wheel['path']}), expected {expected}")
    else:
        s.notes.append(f"{what}: no pip copy next to torch (site-packages/nvidia/{package}/lib): "
                       f"loaded {main[0]}")
    if expected and not runtime_matches(expected, runtime_version or ""):
        s.fail(f"{what} version mismatch: expected {expected}, loaded {runtime_version} from {main[0]}"
               + (f" (the wheel's copy {wheel['path']} is {wheel['version']})" if wheel else ""))


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
    d["cudnn_version"] = None
    if d["cudnn_available"]:
        try:
            d["cudnn_version"] = cudnn_string(torch.backends.cudnn.version())
        except Exception as e:  # torch's own check: "cuDNN version incompatibility: ... found runtime version"
            s.fail(f"{type(e).__name__}: {e}")
    d["devices"] = []
    if usable:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            d["devices"].append({"index": i, "name": p.name,
                                 "capability": "%d.%d" % torch.cuda.get_device_capability(i),
                                 "memory_mib": p.total_memory >> 20})
        d["arch_list"] = torch.cuda.get_arch_list()
    for what, want, got in (("CUDA", args.expect_cuda, d["cuda_version"]),
                            ("torch", args.expect_torch, torch.__version__.split("+")[0])):
        if want and not version_matches(want, got or ""):
            s.fail(f"{what} version mismatch: expected {want}, loaded {got}")
    if usable and not d["cudnn_available"]:
        s.fail("torch sees CUDA but not cuDNN")
    if usable:
        try:
            exercise_libraries(torch)
        except Exception as e:  # torch's own check: "cuDNN version incompatibility: ... found runtime version"
            s.fail(f"a convolution or NCCL all-reduce failed: {type(e).__name__}: {e}")
        for key, read in (("nccl_version", lambda: nccl_string(torch.cuda.nccl.version())),
                          ("cudnn_version", lambda: cudnn_string(torch.backends.cudnn.version()))):
            try:
                d[key] = read()
            except Exception as e:
                s.fail(f"{key}: {type(e).__name__}: {e}")
        check_loaded(torch, s, "cuDNN", "libcudnn", "cudnn", "libcudnn.so", args.expect_cudnn, d["cudnn_version"])
        check_loaded(torch, s, "NCCL", "libnccl", "nccl", "libnccl.so", args.expect_nccl, d["nccl_version"])
    elif args.expect_cudnn and d["cudnn_version"] and not runtime_matches(args.expect_cudnn, d["cudnn_version"]):
        s.fail(f"cuDNN version mismatch: expected {args.expect_cudnn}, loaded {d['cudnn_version']}")
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
        scaler = grad_scaler(torch)
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


def grad_scaler(torch):
    """torch.amp.GradScaler("cuda") since 2.3; torch.cuda.amp.GradScaler before."""
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        return amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


# ---- ddp: one process per visible GPU, NCCL ---------------------------------

def conv_linear_net(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16 * 16, 10))


def flat(tensors):
    import torch
    return torch.cat([t.detach().float().reshape(-1) for t in tensors])


def max_rank_spread(torch, dist, vec):
    """Largest |value on some rank - value on rank 0| over the vector."""
    gathered = [torch.empty_like(vec) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, vec)
    return max(float((g - gathered[0]).abs().max()) for g in gathered)


def ddp_train(torch, dist, model, rank, dtype, use_scaler, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = grad_scaler(torch) if use_scaler else None
    g = torch.Generator(device="cpu").manual_seed(1000 + rank)  # each rank its own data
    losses = []
    for _ in range(steps):
        x = torch.randn(8, 3, 32, 32, generator=g).cuda(rank)
        y = torch.randint(0, 10, (8,), generator=g).cuda(rank)
        opt.zero_grad()
        with torch.autocast("cuda", dtype=dtype):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)  # gradients compared unscaled
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        losses.append(float(loss.item()))
    grads = flat([p.grad for p in model.parameters()])
    params = flat(model.parameters())
    return {"losses": losses, "grad_spread": max_rank_spread(torch, dist, grads),
            "param_spread": max_rank_spread(torch, dist, params),
            "scale": float(scaler.get_scale()) if scaler else None}


def busbw(torch, dist, rank, world, nbytes, iters=20):
    t = torch.ones(nbytes // 4, dtype=torch.float32, device=f"cuda:{rank}")
    for _ in range(3):
        dist.all_reduce(t)
    torch.cuda.synchronize(rank)
    t.fill_(1.0)
    dist.barrier()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        dist.all_reduce(t)
    stop.record()
    stop.synchronize()
    seconds = start.elapsed_time(stop) / 1e3 / iters
    expect = float(world ** iters)  # every rank starts at 1; each all_reduce multiplies by world
    exact = bool((t == expect).all()) if expect < 2 ** 24 else bool(torch.isfinite(t).all())
    algbw = nbytes / seconds / 1e9
    return {"bytes": nbytes, "iters": iters, "time_us": seconds * 1e6, "algbw_gbps": algbw,
            "busbw_gbps": algbw * 2 * (world - 1) / world, "exact": exact}


def ddp_worker(rank, world, init_file, out_dir, steps, nbytes):
    """One rank (torch.multiprocessing.spawn calls it with the rank first);
    writes its findings to out_dir/rank<N>.json."""
    import torch
    import torch.distributed as dist
    result = {"rank": rank}
    try:
        torch.cuda.set_device(rank)
        dist.init_process_group("nccl", init_method=f"file://{init_file}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=120))
        result["device"] = torch.cuda.get_device_name(rank)
        result["backend"] = dist.get_backend()
        torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
        net = conv_linear_net(torch).cuda(rank)
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[rank])
        result["bf16"] = ddp_train(torch, dist, model, rank, torch.bfloat16, False, steps)
        result["fp16"] = ddp_train(torch, dist, model, rank, torch.float16, True, steps)
        result["all_reduce"] = busbw(torch, dist, rank, world, nbytes)
        dist.barrier()
        dist.destroy_process_group()
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(finite(result), f)


def run_ddp(torch, args, s):
    import torch.multiprocessing as mp
    world = torch.cuda.device_count()
    s.data["world_size"] = world
    if world == 1:
        s.notes.append("one visible GPU: DDP runs as a single rank (no inter-GPU traffic; busbw is 0 by definition)")
    work = tempfile.mkdtemp(prefix="kiln-ddp-")  # /tmp: the container's writable tmpfs
    init_file = os.path.join(work, "rendezvous")
    ctx = mp.spawn(ddp_worker, args=(world, init_file, work, args.ddp_steps, args.ddp_mb << 20),
                   nprocs=world, join=False)
    deadline = time.monotonic() + args.ddp_timeout
    try:
        while not ctx.join(timeout=2):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                s.fail(f"DDP over {world} rank(s) did not finish in {args.ddp_timeout} s (a hung NCCL rendezvous "
                       "or collective; NCCL_DEBUG=INFO shows where)")
                break
    except Exception as e:  # a rank died: its traceback's last line names why
        s.fail(f"a DDP rank failed: {str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}")
    ranks = []
    for r in range(world):
        try:
            with open(os.path.join(work, f"rank{r}.json")) as f:
                ranks.append(json.load(f))
        except (OSError, ValueError):
            ranks.append({"rank": r, "error": "no result (the process died)"})
    s.data["ranks"] = [{"rank": x["rank"], "device": x.get("device")} for x in ranks]
    for x in ranks:
        if "error" in x:
            s.fail(f"rank {x['rank']}: {x['error']}")
    if s.status == "fail":
        return
    for mode in ("bf16", "fp16"):
        r0 = ranks[0][mode]
        spread = max(max(x[mode]["grad_spread"], x[mode]["param_spread"]) for x in ranks)
        s.data[mode] = {"steps": len(r0["losses"]), "loss_first": r0["losses"][0], "loss_last": r0["losses"][-1],
                        "max_rank_spread": spread, "scale": r0["scale"]}
        if not all(math.isfinite(v) for x in ranks for v in x[mode]["losses"]):
            s.fail(f"DDP {mode}: a loss is not finite")
        if spread != 0.0:
            s.fail(f"DDP {mode}: gradients or parameters differ across ranks after the steps (max |diff| {spread:.3g})")
    ar = ranks[0]["all_reduce"]
    s.data["all_reduce"] = ar
    if not ar["exact"]:
        s.fail("all_reduce: the sum is wrong on rank 0")
    s.pass_unless_failed()


# ---- shm: /dev/shm against NCCL and DataLoader workers -----------------------

NCCL_SHM_PER_PEER_CHANNEL = 9 << 20  # SIMPLE 4 MiB (NCCL_BUFFSIZE) + LL128 ~4.6 MiB + LL 0.25 MiB
NCCL_SHM_CHANNELS = 2


def shm_need(gpus, workers, prefetch, batch_bytes):
    """What the container's /dev/shm must hold, by the rule docs/verify.md states:
    NCCL's SHM transport (used between GPUs without P2P) maps one buffer set per
    rank, peer and channel into /dev/shm; every DataLoader worker of every rank
    keeps prefetch_factor batches there until the trainer takes them."""
    nccl = gpus * max(gpus - 1, 0) * NCCL_SHM_CHANNELS * NCCL_SHM_PER_PEER_CHANNEL
    loader = gpus * workers * prefetch * batch_bytes
    return {"nccl_bytes": nccl, "dataloader_bytes": loader, "total_bytes": nccl + loader}


class Batches:
    """A dataset of real tensors; each item says which it is, so corruption shows."""

    def __init__(self, torch, n, shape):
        self.torch, self.n, self.shape = torch, n, shape

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.torch.full(self.shape, float(i)), i


def probe_shm(nbytes):
    """Reserve nbytes in /dev/shm (posix_fallocate on tmpfs allocates for real)."""
    fd, path = tempfile.mkstemp(prefix="kiln-shm-probe-", dir="/dev/shm")
    try:
        os.posix_fallocate(fd, 0, nbytes)
        return None
    except OSError as e:
        return str(e)
    finally:
        os.close(fd)
        os.unlink(path)


def run_shm(torch, args, s, gpus):
    d = s.data
    try:
        st = os.statvfs("/dev/shm")
        d["size_bytes"], d["free_bytes"] = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    except OSError as e:
        s.fail(f"/dev/shm: {e}")
        return
    workers, prefetch, batch = 2, 2, (8, 3, 224, 224)
    batch_bytes = 4 * math.prod(batch)
    need = shm_need(max(gpus, 1), workers, prefetch, batch_bytes)
    d.update({"gpus": gpus, "workers": workers, "prefetch_factor": prefetch, "batch_bytes": batch_bytes, "need": need})
    loader = torch.utils.data.DataLoader(Batches(torch, 24, batch), batch_size=None, num_workers=workers,
                                         prefetch_factor=prefetch, timeout=120)
    seen, moved = [], 0
    try:
        for x, i in loader:
            if not bool((x == float(i)).all()):
                s.fail(f"DataLoader batch {i} arrived with wrong values")
                break
            seen.append(int(i))
            moved += x.numel() * x.element_size()
    except Exception as e:  # the classic: "bus error ... insufficient shared memory (shm)"
        s.fail(f"DataLoader with {workers} workers failed after {len(seen)} batches with /dev/shm "
               f"{d['size_bytes'] >> 20} MiB ({d['free_bytes'] >> 20} MiB free): {type(e).__name__}: {e}")
    d["dataloader"] = {"batches": len(seen), "bytes_moved": moved, "in_order": seen == sorted(seen)}
    if s.status != "fail" and len(seen) != 24:
        s.fail(f"DataLoader delivered {len(seen)} of 24 batches")
    probe_error = probe_shm(need["total_bytes"]) if d["free_bytes"] >= 0 else None
    d["probe"] = {"bytes": need["total_bytes"], "error": probe_error}
    if probe_error or d["size_bytes"] < need["total_bytes"]:
        s.notes.append(f"warning: /dev/shm is {d['size_bytes'] >> 20} MiB, the rule asks {need['total_bytes'] >> 20} MiB "
                       f"for {max(gpus, 1)} GPU(s) (NCCL {need['nccl_bytes'] >> 20} MiB + DataLoader "
                       f"{need['dataloader_bytes'] >> 20} MiB)"
                       + (f"; reserving it failed: {probe_error}" if probe_error else "")
                       + ("" if s.status == "fail" else "; what ran here worked (see ddp for NCCL)"))
        d["too_small"] = True
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
    p.add_argument("--expect-nccl")
    p.add_argument("--ddp-steps", type=int, default=4)
    p.add_argument("--ddp-mb", type=int, default=256, help="all_reduce size for busbw, MiB")
    p.add_argument("--ddp-timeout", type=int, default=180)
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
               "conv2d": lambda s: run_conv2d(torch, args, s), "amp": lambda s: run_amp(torch, args, s),
               "ddp": lambda s: run_ddp(torch, args, s),
               "shm": lambda s: run_shm(torch, args, s, gpu["device_count"])}
    for s in sections:
        if s.status == "fail":
            continue
        if not selected(s.name):
            s.notes.append("not selected (--only/--skip)")
        elif not gpu["usable"] and s.name not in ("env", "shm"):  # shm's DataLoader needs no GPU
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
           "expected": {"cuda": args.expect_cuda, "cudnn": args.expect_cudnn, "nccl": args.expect_nccl,
                        "torch": args.expect_torch},
           "sections": {s.name: s.to_json() for s in sections}, "summary": summary}
    text = json.dumps(finite(doc), indent=None if args.compact else 2, allow_nan=False, default=str)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
