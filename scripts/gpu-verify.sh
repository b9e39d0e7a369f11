#!/usr/bin/env bash
# kiln verify on a GPU host through Podman, in "devices" GPU mode. One call:
#   1. Podman 4.3 + crun + conmon from Debian 12 .deb files (.kilnpod/), no install
#   2. containers.conf, policy.json, ldconfig; `podman system service` on a socket
#   3. a base image imported from the host's own CUDA 13 + cuDNN + NCCL stack
#   4. kiln build + kiln verify of matrices/gpu-host.toml (sm_90: must verify) and
#      matrices/gpu-host-sm75.toml (sm_75 SASS only: the arch check must reject it)
#   5. a table; the verify JSON, the table and a log go to $OUT
# Needs: .kilnpod/*.deb (apt-get download, see docs/verify.md), a Release kiln and
# the libraries the host may lack as .kilnbin/{kiln,lib/} or packed in
# .kilncarry/kilnbin.tar.xz (smaller to carry), root.
#
# usage: scripts/gpu-verify.sh      (exit 0 when sm_90 verified and sm_75 rejected by arch)
# Sourced (scripts/gpu-e2e.sh), it stops after the setup (steps 1-3's runner rewrite).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/build/gpu-verify-out}
DEBS=${KILN_DEBS:-$ROOT/.kilnpod}
KBIN=${KILN_BIN_DIR:-$ROOT/.kilnbin}
PFX=${KILN_PODMAN_PREFIX:-/opt/kilnpod}
WORK=${KILN_WORK:-/var/tmp/kiln-gpu-verify}
SOCK=/run/kiln-podman.sock   # matrices/gpu-host*.toml name it
STORE=$WORK/storage
RUNROOT=/run/kilnpod
BASE=localhost/kiln-hostbase:cuda13
mkdir -p "$OUT" "$WORK" "$RUNROOT"
LOG=$OUT/gpu-verify.log
: >"$LOG"
# NVLink multicast stays off: kiln passes these into the smoke container too.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
T0=$(date +%s.%N)
el() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN{printf "%.1f", a-b}'; }
log() { echo "[gpu-verify $(el "$T0")s] $*" | tee -a "$LOG" >&2; }
die() { log "FAILED: $*"; exit 2; }

# ---- GPU facts --------------------------------------------------------------------
GPUS=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)
NGPU=$(printf '%s\n' "$GPUS" | grep -c . || true)
GPU_NAME=$(printf '%s\n' "$GPUS" | head -1)
GPU_SLUG=$(echo "${GPU_NAME:-no-GPU}" | sed -E 's/^NVIDIA //; s/[^A-Za-z0-9.]+/-/g; s/-+$//')
[ "${NGPU:-0}" -gt 1 ] && GPU_SLUG="${NGPU}x$GPU_SLUG"
DATE=$(date -u +%Y-%m-%d)
log "GPUs: ${NGPU:-0} x ${GPU_NAME:-none}; driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
# /dev/nvidia-uvm appears once something has used CUDA on the host.
if [ ! -e /dev/nvidia-uvm ] && command -v python3 >/dev/null; then
  python3 -c 'import torch; torch.zeros(1).cuda()' >/dev/null 2>&1 || true
fi
DRV=""
for d in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib; do
  [ -e "$d/libcuda.so.1" ] && { DRV=$d; break; }
done
if [ -z "$DRV" ]; then
  L=$(ldconfig -p | awk '/libcuda.so.1 /{print $NF; exit}')
  [ -n "$L" ] && DRV=$(dirname "$L")
fi
log "driver libraries: ${DRV:-not found}"

# ---- 1. Podman from .deb files ------------------------------------------------------
T=$(date +%s.%N)
mkdir -p "$PFX/prog" "$PFX/libs"
for f in "$DEBS"/*.deb; do
  case $(basename "$f") in
    lib*) dpkg -x "$f" "$PFX/libs" ;;
    *) dpkg -x "$f" "$PFX/prog" ;;
  esac
done
# conmon and crun are started by Podman without our LD_LIBRARY_PATH: ldconfig,
# after the host's own directories (zz-).
printf '%s\n' "$PFX/libs/usr/lib/x86_64-linux-gnu" "$PFX/libs/lib/x86_64-linux-gnu" >/etc/ld.so.conf.d/zz-kiln.conf
ldconfig
export PATH="$PFX/prog/usr/bin:$PFX/prog/usr/sbin:$PATH"
mkdir -p /etc/containers
[ -e /etc/containers/policy.json ] || echo '{"default":[{"type":"insecureAcceptAnything"}]}' >/etc/containers/policy.json
export CONTAINERS_CONF=$WORK/containers.conf
# crun refuses hybrid cgroup hierarchies (v1 + an unused v2 mount): then no cgroups.
CGROUPS=""
[ -d /sys/fs/cgroup/unified ] && CGROUPS='cgroups = "disabled"'
log "cgroups: $(stat -fc %T /sys/fs/cgroup) ${CGROUPS:-(podman default)}"
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = []
log_driver = "k8s-file"
seccomp_profile = "$PFX/prog/usr/share/containers/seccomp.json"
$CGROUPS
[network]
network_backend = "netavark"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
conmon_path = ["$PFX/prog/usr/bin/conmon"]
helper_binaries_dir = ["$PFX/prog/usr/lib/podman", "$PFX/prog/usr/libexec/podman"]
runtime = "crun"
[engine.runtimes]
crun = ["$PFX/prog/usr/bin/crun"]
EOF
pod() { podman --root "$STORE" --runroot "$RUNROOT" --storage-driver overlay "$@"; }
pod --version >>"$LOG" 2>&1 || die "podman does not start (see $LOG)"
rm -f "$SOCK"
setsid podman --root "$STORE" --runroot "$RUNROOT" --storage-driver overlay --log-level warn \
  system service --time=0 "unix://$SOCK" >>"$OUT/podman-service.log" 2>&1 </dev/null &
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.2; done
curl -sf --unix-socket "$SOCK" http://localhost/v1.41/version >"$WORK/version.json" || die "no Podman API on $SOCK"
log "podman $(pod --version | awk '{print $3}') serving unix://$SOCK ($(el "$T") s)"

# ---- 2. the base: the host's userland + CUDA + cuDNN/NCCL, as small as works ------------
T=$(date +%s.%N)
CUDA=$(readlink -f /usr/local/cuda)
PY=$(command -v python3 || true)
SITE=$([ -n "$PY" ] && "$PY" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])' 2>/dev/null || true)
CUDNN_ROOT=""; NCCL_ROOT=""
[ -n "$SITE" ] && [ -d "$SITE/nvidia/cudnn/lib" ] && CUDNN_ROOT=$SITE/nvidia/cudnn
[ -n "$SITE" ] && [ -d "$SITE/nvidia/nccl/lib" ] && NCCL_ROOT=$SITE/nvidia/nccl
# cmake: the system's, or pip's (its bin/cmake is a Python wrapper: take the real tree).
EXTRA=(); XFORM=(); TOOLPATH=""
CMAKE=$(command -v cmake || true)
if [ -n "$CMAKE" ] && [ "$(head -c2 "$CMAKE")" = "#!" ] && [ -n "$PY" ]; then
  CMDATA=$("$PY" -c 'import cmake,os;print(os.path.join(os.path.dirname(cmake.__file__),"data"))' 2>/dev/null)
  [ -x "$CMDATA/bin/cmake" ] && { EXTRA+=("${CMDATA#/}"); XFORM+=(--transform "s|^${CMDATA#/}|opt/kiln-tools/cmake|"); TOOLPATH=/opt/kiln-tools/cmake/bin:; }
elif [ -n "$CMAKE" ]; then
  for d in /usr/share/cmake-*; do [ -d "$d" ] && EXTRA+=("${d#/}"); done
fi
log "CUDA $CUDA; cuDNN ${CUDNN_ROOT:-in CUDA}; NCCL ${NCCL_ROOT:-in CUDA}; cmake ${CMAKE:-none}; make $(command -v make || echo none); g++ $(command -v g++ || echo none); ninja $(command -v ninja || echo none)"
mkdir -p "$WORK/stage"/{tmp,home,root,var/tmp,var/lib,run,proc,sys,dev,opt}
chmod 1777 "$WORK/stage/tmp" "$WORK/stage/var/tmp"
# Left out of every base: driver libraries (the host's come in at run time; the
# static check refuses an image holding them), and CUDA parts no smoke test loads.
EXCL_ALL=('libcuda.so*' 'libcudadebugger*' 'libnvidia-*' 'libnvcuvid*' 'libnvoptix*'
      'libcufft*' 'libcusparse*' 'libcusolver*' 'libcurand*' 'libnpp*' 'libnvjpeg*' 'libnvblas*' 'libcupti*'
      'libnvperf*' 'libcheckpoint*' 'libcufile*' 'libnvfatbin*' 'libnvptxcompiler*' 'libcublas_static.a'
      'libcublasLt_static.a' 'libcudnn_adv*' '*_static_v*.a' 'libLLVM*' 'dri' 'gallium*' '__pycache__'
      'firmware' 'nsight*' 'compute-sanitizer' 'libgtk*' 'libicudata*')
# The distribution's Python (its standard library and ensurepip's wheels), so
# that a recipe's `python3 -m venv` works without apt.
PY_PARTS=(usr/lib/python3.12 usr/lib/python3 usr/share/python-wheels)

# import_host_base TAG MODE: the host's userland + CUDA 13 as an image.
#   cudnn          everything the smoke suite needs, with the venv's pip cuDNN
#                  and NCCL on LD_LIBRARY_PATH (matrices/gpu-host*.toml)
#   torch-devel    like nvidia/cuda:13.0-devel: toolkit, compilers, headers;
#                  no cuDNN/NCCL at all (a PyTorch wheel brings its own)
#   torch-runtime  like nvidia/cuda:13.0-runtime: no nvcc, no gcc, no headers
import_host_base() {
  local tag=$1 mode=$2 t p
  t=$(date +%s.%N)
  if pod image exists "$tag"; then log "base $tag already there: kept"; return 0; fi
  local parts=(usr/bin usr/sbin usr/lib/x86_64-linux-gnu usr/lib64 usr/share/zoneinfo etc bin sbin lib lib64
               usr/local/cuda "${CUDA#/}/lib64" "${CUDA#/}/lib" "${CUDA#/}/targets/x86_64-linux/lib" "${CUDA#/}/version.json"
               "${PY_PARTS[@]}")
  local excl=("${EXCL_ALL[@]}") xform=() envs=() ldp="$CUDA/lib64"
  if [ "$mode" != torch-runtime ]; then
    parts+=(usr/lib/gcc usr/libexec usr/include "${CUDA#/}/bin" "${CUDA#/}/nvvm" "${CUDA#/}/include"
            "${CUDA#/}/targets/x86_64-linux/include" "${EXTRA[@]}")
    xform=("${XFORM[@]}")
  else
    # No compiler in a runtime image (the static check looks for nvcc, gcc, g++, cc).
    excl+=('gcc' 'gcc-[0-9]*' 'g++' 'g++-[0-9]*' 'x86_64-linux-gnu-gcc*' 'x86_64-linux-gnu-g++*' 'cc' 'c++'
           'x86_64-linux-gnu-cpp*' 'cpp' 'cpp-[0-9]*' 'nvcc' 'nvcc.profile' 'cicc' 'ptxas' 'cudafe++' 'fatbinary' 'nvlink')
  fi
  case $mode in
    cudnn)
      [ -n "$CUDNN_ROOT" ] && { parts+=("${CUDNN_ROOT#/}"); envs+=(--change "ENV CUDNN_ROOT=$CUDNN_ROOT"); ldp+=":$CUDNN_ROOT/lib"; }
      [ -n "$NCCL_ROOT" ] && { parts+=("${NCCL_ROOT#/}"); envs+=(--change "ENV NCCL_ROOT=$NCCL_ROOT"); ldp+=":$NCCL_ROOT/lib"; } ;;
    torch-*)
      # The host's packaged cuDNN 9.14 / NCCL 2.28.3 stay out: the wheel's are the only ones.
      excl+=('libcudnn*' 'libnccl*' 'cudnn*.h' 'nccl*.h') ;;
  esac
  local have=() tarx=()
  for p in "${parts[@]}"; do [ -e "/$p" ] || [ -L "/$p" ] && have+=("$p"); done
  for p in "${excl[@]}"; do tarx+=(--exclude="$p"); done
  envs+=(--change "ENV PATH=${TOOLPATH}$CUDA/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
         --change "ENV LD_LIBRARY_PATH=$ldp" --change "ENV NCCL_NVLS_ENABLE=0")
  tar -C / "${tarx[@]}" "${xform[@]}" -cf - "${have[@]}" -C "$WORK/stage" tmp home root var run proc sys dev opt 2>>"$LOG" |
    pod import "${envs[@]}" - "$tag" >>"$LOG" 2>&1 || die "podman import of the host base $tag ($mode) failed"
  log "base $tag ($mode) imported: $(pod image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.2f GB", $1/1e9}') in $(el "$t") s"
}
# Which bases: KILN_HOST_BASES (scripts/gpu-torch-e2e.sh asks for the torch pair).
for b in ${KILN_HOST_BASES:-cudnn}; do
  case $b in
    cudnn) import_host_base "$BASE" cudnn ;;
    torch) import_host_base localhost/kiln-torchbase:cuda13-runtime torch-runtime & rt=$!
           import_host_base localhost/kiln-torchbase:cuda13-devel torch-devel; wait "$rt" ;;  # not the registry
  esac
done

# ---- 3. kiln build + verify -----------------------------------------------------------------
if [ ! -x "$KBIN/kiln" ] && [ -f "$ROOT/.kilncarry/kilnbin.tar.xz" ]; then
  KBIN=$WORK/kilnbin
  mkdir -p "$KBIN" && tar -C "$KBIN" -xJf "$ROOT/.kilncarry/kilnbin.tar.xz"
fi
kiln() { LD_LIBRARY_PATH="$KBIN/lib" "$KBIN/kiln" --data-dir "$ROOT" "$@"; }
kiln --version >>"$LOG" 2>&1 || kiln --help >/dev/null 2>>"$LOG" || die "the carried kiln does not start (see $LOG)"
export DOCKER_HOST=unix://$SOCK
# The runner section names this host's device nodes and driver directory.
DEVS=""; for d in /dev/nvidia[0-9]* /dev/nvidiactl /dev/nvidia-uvm; do [ -e "$d" ] && DEVS+="${DEVS:+, }\"$d\""; done
# No GPU here (a dry run of the plumbing): a harmless device; the smoke suite then says no-gpu.
[ -n "$DEVS" ] || DEVS='"/dev/null"'
mkdir -p "$WORK/matrices"
for m in ${KILN_MATRICES:-gpu-host gpu-host-sm75}; do
  sed -E "s|^devices = .*|devices = [$DEVS]|; s|^driver_libs = .*|driver_libs = \"${DRV:-/usr/local/nvidia/lib64}\"|" \
    "$ROOT/matrices/$m.toml" >"$WORK/matrices/$m.toml"
done
log "runner devices: [$DEVS]"
# scripts/gpu-e2e.sh sources this file for the setup above (Podman serving
# $SOCK, the base, kiln(), $WORK/matrices/*.toml) and goes on with kiln run.
[ "${BASH_SOURCE[0]}" != "$0" ] && return 0
# The two matrices in parallel (own state directories: one ledger each).
verify_matrix() {  # matrix name
  local m=$1 st=$WORK/state-$1 t rc
  t=$(date +%s.%N)
  kiln build "$WORK/matrices/$m.toml" --state-dir "$st" --format json >"$OUT/$m-build.json" 2>>"$WORK/$m.log"
  rc=$?
  log "kiln build $m: exit $rc in $(el "$t") s"
  [ $rc = 0 ] || cat "$st/logs/$m/"*.log 2>/dev/null | tail -30 >>"$WORK/$m.log"
  t=$(date +%s.%N)
  kiln verify "$WORK/matrices/$m.toml" --state-dir "$st" --format json --timeout 150 \
    >"$OUT/$DATE-$GPU_SLUG-verify-$m.json" 2>>"$WORK/$m.log"
  log "kiln verify $m: exit $? in $(el "$t") s"
  for f in "$st/logs/$m/"*.smoke.log; do
    [ -f "$f" ] && { echo "== $f"; tail -40 "$f"; } >>"$WORK/$m.log"
  done
}
verify_matrix gpu-host & P1=$!
verify_matrix gpu-host-sm75 & P2=$!
wait $P1 $P2
cat "$WORK/gpu-host.log" "$WORK/gpu-host-sm75.log" >>"$LOG" 2>/dev/null
RC_ALL=0

# ---- 4. the table --------------------------------------------------------------------------
python3 - "$OUT/$DATE-$GPU_SLUG-verify-gpu-host.json" "$OUT/$DATE-$GPU_SLUG-verify-gpu-host-sm75.json" \
  "${NGPU:-0} x ${GPU_NAME:-no GPU}" "$(el "$T0")" <<'PY' | tee "$OUT/$DATE-$GPU_SLUG-verify-table.txt"
import json, sys
files, gpus, total = sys.argv[1:3], sys.argv[3], sys.argv[4]
print(f"kiln verify through Podman (devices mode) on {gpus}; whole script {total} s")
hdr = ("matrix / combination", "static", "gpu", "verified", "GEMM TF/s fp32/fp16/bf16", "NCCL ranks / busbw GB/s", "reason")
rows, ok = [], {}
for f in files:
    try:
        doc = json.load(open(f))
    except Exception as e:
        rows.append((f.rsplit("verify-", 1)[-1][:-5], "-", "-", "-", "-", "-", f"no verify JSON ({e.__class__.__name__})"))
        continue
    m = f.rsplit("verify-", 1)[-1][:-5]
    for c in doc["combos"]:
        st = {k["check"]: k for k in c["checks"]}
        g = st.get("gpu") or {}
        secs = (g.get("detail") or {}).get("sections") or {}
        perf = secs.get("cublas", {}).get("data", {})
        devs = perf.get("devices", [])  # the slowest GPU per precision
        def slowest(k):
            v = [d[k]["tflops"] for d in devs if isinstance(d.get(k), dict) and d[k].get("tflops")]
            return f"{min(v):.0f}" if v else "-"
        tf = "/".join(slowest(k) for k in ("fp32", "fp16", "bf16")) if devs else "-"
        n = secs.get("nccl", {}).get("data", {})
        nc = f"{n.get('ranks', '-')} / {float(n.get('busbw_gbps') or 0):.0f}" if n else "-"
        arch = secs.get("arch", {})
        reason = c.get("reason") or ""
        if arch.get("status") == "fail" and arch.get("errors"):
            reason = "arch: " + "; ".join(arch.get("errors", []))[:150]
        rows.append((f"{m} / {c['id']}", st.get("static", {}).get("status", "-"), g.get("status", "-"),
                     "yes" if c["verified"] else "no", tf, nc, reason[:160]))
        ok[m] = (c["verified"], arch.get("status"), " ".join(arch.get("errors", [])))
w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(6)]
for r in [hdr] + rows:
    print("  ".join(str(x).ljust(w[i]) for i, x in enumerate(r[:6])) + "  " + str(r[6]))
good = ok.get("gpu-host", (False,))[0]
bad = ok.get("gpu-host-sm75")
rejected = bool(bad) and not bad[0] and bad[1] == "fail" and "no kernel image" in bad[2]
print(f"\nexpected: sm_90 verified -> {'yes' if good else 'NO'}; sm_75-only rejected by arch (no kernel image) -> {'yes' if rejected else 'NO'}")
sys.exit(0 if good and rejected else 1)
PY
RC=${PIPESTATUS[0]}
pod images >>"$LOG" 2>&1
exit $(( RC || RC_ALL ))
