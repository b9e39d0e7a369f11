#!/usr/bin/env bash
# The PyTorch image, proven on a GPU host: build -> verify -> promote
# -> report of PyTorch 2.11 cu130 runtime and devel images, through Podman in
# "devices" mode, into docker-registry. One call:
#   0. docker-registry on 127.0.0.1:5000 (scripts/gpu-registry.sh)
#   1. scripts/gpu-verify.sh's setup, sourced: Podman, the carried kiln, and two
#      bases imported from the host's Ubuntu 24.04 + CUDA 13.0 userland without
#      any cuDNN/NCCL (kiln-torchbase:cuda13-{runtime,devel})
#   2. a wheelhouse repacked from the host's venv (scripts/wheelhouse.py), served
#      by `python3 -m http.server` on 127.0.0.1:8099: the images run
#      `pip install --no-index --find-links http://127.0.0.1:8099/`
#   3. `kiln run matrices/gpu-torch.toml`: both images verified (static: torch,
#      cuDNN, NCCL, arch list from libtorch_cuda.so; gpu: kiln-smoke, LibTorch,
#      smoke_torch.py env/matmul/conv2d/amp/ddp/shm on every GPU) and tagged
#   4. negative controls, each must be refused with its reason and no tag:
#      (a) shm64  the same images, the runner's /dev/shm at 64 MB (DDP over all GPUs)
#      (b) cudnn  a runtime base with the host's packaged cuDNN 9.14 first on
#                 LD_LIBRARY_PATH (cuDNN's sub-libraries follow it)
#      (c) sm70   the policy and runner say sm_70, which the arch list lacks
#   5. a table: combination, verified, tags in the registry, versions, GEMM
#      TFLOP/s (cuBLAS vs torch.matmul), DDP ranks/busbw, GPUs, reason
# Reports, smoke JSON, the table and logs go to $OUT.
#
# usage: scripts/gpu-torch-e2e.sh   (exit 0 when the positive pair is tagged and every control refused)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OUT=${OUT:-$ROOT/build/gpu-torch-out}
export KILN_WORK=${KILN_WORK:-/var/tmp/kiln-gpu-torch}
mkdir -p "$OUT" "$KILN_WORK"

# ---- 0. the registry (before Podman starts: it reads registries.conf) --------------------
# shellcheck source=gpu-registry.sh
source "$ROOT/scripts/gpu-registry.sh"

# ---- 1. Podman, the torch bases, kiln, the matrix ------------------------------------------
export KILN_HOST_BASES=torch KILN_MATRICES=gpu-torch
# shellcheck source=gpu-verify.sh
source "$ROOT/scripts/gpu-verify.sh"
LOG_TAG=gpu-torch
log() { echo "[$LOG_TAG $(el "$T0")s] $*" | tee -a "$LOG" >&2; }
registry_check

# ---- 2. the wheelhouse from the host's venv ---------------------------------------------
T=$(date +%s.%N)
WHEELS=$WORK/wheels
VENV_SITE=${KILN_TORCH_SITE:-$SITE}
[ -d "$VENV_SITE/torch" ] || die "no torch in $VENV_SITE (set KILN_TORCH_SITE)"
# The venv's own Python: it has pip (for `packaging`) and evaluates the markers.
PYV=$(cd "$VENV_SITE/../../.." && pwd)/bin/python
[ -x "$PYV" ] || PYV=python3
"$PYV" "$ROOT/scripts/wheelhouse.py" --site "$VENV_SITE" --out "$WHEELS" --check -j "$(nproc)" torch >"$OUT/wheelhouse.log" 2>&1 ||
  die "scripts/wheelhouse.py failed (see wheelhouse.log)"
log "wheelhouse: $(tail -1 "$OUT/wheelhouse.log") ($(el "$T") s)"
(cd "$WHEELS" && setsid python3 -m http.server 8099 --bind 127.0.0.1 >"$OUT/wheel-server.log" 2>&1 </dev/null &)
for _ in $(seq 50); do curl -sf http://127.0.0.1:8099/ >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:8099/ >/dev/null || die "the wheel server does not answer on 127.0.0.1:8099"

# ---- 3. the PyTorch images ------------------------------------------------------------------
run_matrix() {  # matrix-file name; kiln run it with its own state directory
  local m=$1 st=$WORK/state-$1 t rc
  t=$(date +%s.%N)
  kiln run "$WORK/matrices/$m.toml" --state-dir "$st" --format json >"$OUT/$m-run.json" 2>"$OUT/$m-run.log"
  rc=$?
  log "kiln run $m: exit $rc in $(el "$t") s"
  for f in "$st/logs/"*/*.log; do [ -f "$f" ] && { echo "== $f"; tail -60 "$f"; } >>"$OUT/$m-run.log"; done
  for x in md json html; do
    for r in "$st/reports/"*".$x"; do [ -f "$r" ] && cp "$r" "$OUT/$DATE-$GPU_SLUG-torch-$m.$x"; done
  done
  # Every check's full detail (each smoke program's JSON) as the ledger holds it.
  python3 - "$st/state.db" >"$OUT/$m-verdicts.json" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT image_digest, runner, check_name, status, detail FROM verdicts ORDER BY id").fetchall()
print(json.dumps([{"image_id": d, "runner": r, "check": c, "status": s, "detail": json.loads(j)} for d, r, c, s, j in rows], indent=1))
PY
}
# KILN_TORCH_STEPS=controls: only the controls (the positive pair ran before, same $KILN_WORK).
[ "${KILN_TORCH_STEPS:-all}" = controls ] || run_matrix gpu-torch

# ---- 4. the negative controls -----------------------------------------------------------------
M=$WORK/matrices/gpu-torch.toml
# (a) the same images (same matrix name: same local images, no rebuild), /dev/shm at 64 MB
sed -E 's|^repository = .*|repository = "kiln/gpu-torch-shm64"|; s|^shm_size = .*|shm_size = "64m"|' "$M" >"$WORK/matrices/gpu-torch-shm64.toml"
# (c) the same images, policy and runner of class sm_70: 2.11 cu130's arch list starts at 7.5
sed -E 's|^repository = .*|repository = "kiln/gpu-torch-sm70"|; s|"sm_90"|"sm_70"|g' "$M" >"$WORK/matrices/gpu-torch-sm70.toml"
# (b) a runtime base whose LD_LIBRARY_PATH puts the host's packaged cuDNN 9.14
# ahead: torch's DT_RPATH still finds the wheel's libcudnn.so.9, but the
# sub-libraries it loads later (libcudnn_graph, engines) follow
# LD_LIBRARY_PATH: a mixed cuDNN that must be refused. Made from the torch
# base (not from the built image: its recipe's useradd would meet its own user).
RT=localhost/kiln-torchbase:cuda13-runtime
BADBASE=localhost/kiln-torchbase:cuda13-runtime-host-cudnn
mkdir -p "$WORK/host-cudnn-ctx/lib"
cp -a /usr/lib/x86_64-linux-gnu/libcudnn*.so.9* "$WORK/host-cudnn-ctx/lib/" 2>/dev/null
RT_LD=$(pod image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$RT" 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=//p')
cat >"$WORK/host-cudnn-ctx/Containerfile" <<EOF
FROM $RT
USER root
COPY lib/ /opt/host-cudnn/
ENV LD_LIBRARY_PATH=/opt/host-cudnn${RT_LD:+:$RT_LD}
EOF
if [ "${KILN_TORCH_CONTROLS:-1}" = 1 ] && ls "$WORK/host-cudnn-ctx/lib/"libcudnn.so.9* >/dev/null 2>&1 && pod build -q -t "$BADBASE" "$WORK/host-cudnn-ctx" >>"$LOG" 2>&1; then
  sed -E 's|^name = .*|name = "gpu-torch-cudnn"|; s|^repository = .*|repository = "kiln/gpu-torch-cudnn"|;
          s|^image = "localhost/kiln-torchbase:cuda13-runtime"|image = "'"$BADBASE"'"|' "$M" >"$WORK/matrices/gpu-torch-cudnn.toml"
  log "control (b) base $BADBASE: $RT + the host's cuDNN $(ls /usr/lib/x86_64-linux-gnu/libcudnn.so.9.* | head -1 | sed 's/.*so[.]9[.]/9./') first on LD_LIBRARY_PATH"
else
  log "control (b) skipped: no host cuDNN in /usr/lib/x86_64-linux-gnu or the base did not build"
fi
[ "${KILN_TORCH_CONTROLS:-1}" = 1 ] || log "controls skipped (KILN_TORCH_CONTROLS=0)"
PIDS=()
# KILN_TORCH_CONTROL_LIST="shm64": only the named controls (a device call spent on one question).
for c in ${KILN_TORCH_CONTROL_LIST:-shm64 sm70 cudnn}; do
  [ "${KILN_TORCH_CONTROLS:-1}" = 1 ] || break
  [ -f "$WORK/matrices/gpu-torch-$c.toml" ] && { run_matrix "gpu-torch-$c" & PIDS+=($!); }
done
# Only these: a bare `wait` would also wait for the Podman service gpu-verify.sh started.
[ ${#PIDS[@]} -eq 0 ] || wait "${PIDS[@]}"

# ---- 5. the registry and the table ------------------------------------------------------------
for r in gpu-torch gpu-torch-shm64 gpu-torch-sm70 gpu-torch-cudnn; do
  printf '%s ' "kiln/$r"; curl -s "http://$REG_ADDR/v2/kiln/$r/tags/list"; echo
done >"$OUT/registry-tags.txt"
# The matrices this call ran (a controls-only call has no positive pair to judge).
RAN=(); for r in gpu-torch gpu-torch-shm64 gpu-torch-sm70 gpu-torch-cudnn; do [ -f "$OUT/$r-run.json" ] && RAN+=("$r"); done
python3 "$ROOT/scripts/gpu-torch-table.py" "$REG_ADDR" "${NGPU:-0} x ${GPU_NAME:-no GPU}" "$(el "$T0")" "$OUT" \
  "${RAN[@]}" | tee "$OUT/$DATE-$GPU_SLUG-torch-table.txt"
RC=${PIPESTATUS[0]}
pod images >>"$LOG" 2>&1
cp "$LOG" "$OUT/$DATE-$GPU_SLUG-torch.log" 2>/dev/null
# The device tool brings back only a few files: the raw logs go back as one archive.
AUX=(); for f in "$OUT"/*-run.log "$OUT"/*-run.json "$OUT"/*-verdicts.json "$OUT"/wheelhouse.log "$OUT"/wheel-server.log \
                 "$OUT"/podman-service.log "$OUT"/registry.log "$OUT"/gpu-verify.log "$OUT"/registry-tags.txt; do
  [ -f "$f" ] && AUX+=("$(basename "$f")"); done
[ ${#AUX[@]} -gt 0 ] && tar -C "$OUT" -czf "$OUT/$DATE-$GPU_SLUG-torch-logs.tar.gz" "${AUX[@]}"
exit "$RC"
