#!/usr/bin/env bash
# kiln run end to end on a GPU host: build -> verify -> promote -> report, into
# a real registry. One call:
#   0. docker-registry (Debian 12 .deb in .kilnpod/) serving plain HTTP on
#      127.0.0.1:5000, filesystem storage under /tmp; registries.conf marks it
#      insecure for Podman (its compat push API takes no tlsVerify from kiln)
#   1. scripts/gpu-verify.sh's setup, sourced: Podman in devices mode on
#      /run/kiln-podman.sock, the base imported from the host's CUDA 13 stack,
#      the carried kiln, the matrices with this host's device nodes
#   2. `kiln run` of matrices/gpu-host.toml (sm_90: must be verified and tagged)
#      and matrices/gpu-host-sm75.toml (sm_75 SASS only: the arch check must
#      reject it, so no tag), both with [registry] 127.0.0.1:5000 kiln/gpu-host
#   3. the registry's tag list, and a table: combination, image, checks,
#      verified, tags (or why not), whether each tag is in the registry
# Reports (.md/.json/.html), the table and logs go to $OUT.
# Needs what scripts/gpu-verify.sh needs, plus docker-registry_*.deb in .kilnpod/.
#
# usage: scripts/gpu-e2e.sh   (exit 0 when sm_90 is tagged in the registry and sm_75 is not)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OUT=${OUT:-$ROOT/build/gpu-e2e-out}
export KILN_WORK=${KILN_WORK:-/var/tmp/kiln-gpu-e2e}
mkdir -p "$OUT" "$KILN_WORK"

# ---- 0. the registry (before Podman starts: it reads registries.conf) --------------------
# shellcheck source=gpu-registry.sh
source "$ROOT/scripts/gpu-registry.sh"

# ---- 1. Podman, the base, kiln, the matrices: gpu-verify.sh's setup ------------------------
# shellcheck source=gpu-verify.sh
source "$ROOT/scripts/gpu-verify.sh"
LOG_TAG=gpu-e2e
log() { echo "[$LOG_TAG $(el "$T0")s] $*" | tee -a "$LOG" >&2; }
registry_check

# ---- 2. kiln run, both matrices at once (own state directories) ------------------------------
run_matrix() {  # matrix name
  local m=$1 st=$WORK/e2e-state-$1 t rc
  t=$(date +%s.%N)
  kiln run "$WORK/matrices/$m.toml" --state-dir "$st" --format json >"$OUT/$m-run.json" 2>"$OUT/$m-run.log"
  rc=$?
  log "kiln run $m: exit $rc in $(el "$t") s"
  for f in "$st/logs/$m/"*.smoke.log; do [ -f "$f" ] && { echo "== $f"; tail -40 "$f"; } >>"$OUT/$m-run.log"; done
  for x in md json html; do
    [ -f "$st/reports/$m.$x" ] && cp "$st/reports/$m.$x" "$OUT/$DATE-$GPU_SLUG-e2e-$m.$x"
  done
}
run_matrix gpu-host & P1=$!
run_matrix gpu-host-sm75 & P2=$!
wait $P1 $P2

# ---- 3. the registry, and the table --------------------------------------------------------
curl -s "http://$REG_ADDR/v2/kiln/gpu-host/tags/list" >"$OUT/registry-tags.json"
log "registry tags: $(cat "$OUT/registry-tags.json")"
python3 - "$REG_ADDR" "$OUT/registry-tags.json" "${NGPU:-0} x ${GPU_NAME:-no GPU}" "$(el "$T0")" \
  "$OUT/gpu-host-run.json" "$OUT/gpu-host-sm75-run.json" <<'PY' | tee "$OUT/$DATE-$GPU_SLUG-e2e-table.txt"
import json, sys, urllib.request
reg, tagsfile, gpus, total = sys.argv[1:5]
files = sys.argv[5:]
try:
    in_reg = json.load(open(tagsfile)).get("tags") or []
except Exception:
    in_reg = []
ACCEPT = ", ".join(["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])
def digest(tag):
    req = urllib.request.Request(f"http://{reg}/v2/kiln/gpu-host/manifests/{tag}", method="HEAD", headers={"Accept": ACCEPT})
    try:
        return urllib.request.urlopen(req, timeout=10).headers.get("Docker-Content-Digest", "")
    except Exception:
        return ""
print(f"kiln run (build -> verify -> promote) through Podman (devices mode) on {gpus}, "
      f"registry docker-registry http://{reg} repository kiln/gpu-host; whole script {total} s")
hdr = ("matrix / combination", "image id", "checks", "verified", "tags (or why not)", "in registry")
rows, ok = [], {}
for f in files:
    m = f.rsplit("/", 1)[-1][:-len("-run.json")]
    try:
        doc = json.load(open(f))
    except Exception as e:
        rows.append((m, "-", "-", "-", f"no kiln run JSON ({e.__class__.__name__}); see {m}-run.log", "-"))
        continue
    for c in doc["combos"]:
        if c.get("plan") != "valid":
            continue
        tags = [t.rsplit(":", 1)[-1] for t in c.get("tags", [])]
        present = []
        for t in tags:
            d = digest(t) if t in in_reg else ""
            rec = f"sha256-{d[7:]}.kiln" if d.startswith("sha256:") else ""
            present.append(f"{t}: yes" + (f" (record {rec[:19]}….kiln {'yes' if rec in in_reg else 'NO'})" if rec else "")
                           if t in in_reg else f"{t}: NO")
        # the tags its template would give, looked for even when kiln gave none
        want = [t for t in in_reg if not t.startswith("sha256-")]
        mine = [t for t in want if t.endswith(m.replace("gpu-host", "").strip("-") or "sm90")]
        if not tags:
            present = [f"none of {m}'s tags ({', '.join(mine) if mine else 'absent'})"]
        rows.append((f"{m} / {c['id']}", (c.get("image_id") or "-")[:19], " ".join(c.get("checks", [])),
                     "yes" if c.get("verified") else "no",
                     ", ".join(c.get("tags", [])) or ("not tagged: " + ((c.get("reason") or c.get("why")) or "?"))[:200],
                     "; ".join(present)))
        ok[m] = (bool(c.get("verified")), tags, all(t in in_reg for t in tags), (c.get("reason") or c.get("why")) or "", mine)
for r in [hdr] + rows:
    print(" | ".join(str(x) for x in r))
print(f"\nregistry tags/list: {', '.join(in_reg) or '(none)'}")
g = ok.get("gpu-host", (False, [], False, "", []))
b = ok.get("gpu-host-sm75", (True, ["?"], True, "", ["?"]))
good = g[0] and bool(g[1]) and g[2] and any(t.startswith("sha256-") and t.endswith(".kiln") for t in in_reg)
bad = (not b[0]) and not b[1] and not b[4] and ("arch" in b[3] or "no kernel image" in b[3])
print(f"expected: sm_90 verified, tagged, in the registry with its .kiln record -> {'yes' if good else 'NO'}; "
      f"sm_75-only rejected by the arch check and absent from the registry -> {'yes' if bad else 'NO'}")
sys.exit(0 if good and bad else 1)
PY
RC=${PIPESTATUS[0]}
pod images >>"$LOG" 2>&1
# The device tool brings back only a few files: the raw logs go back as one archive.
cp "$LOG" "$OUT/$DATE-$GPU_SLUG-e2e.log" 2>/dev/null
AUX=(); for f in "$DATE-$GPU_SLUG-e2e.log" gpu-verify.log gpu-host-run.json gpu-host-run.log gpu-host-sm75-run.json \
                 gpu-host-sm75-run.log podman-service.log registry.log registry-tags.json; do
  [ -f "$OUT/$f" ] && AUX+=("$f"); done
[ ${#AUX[@]} -gt 0 ] && tar -C "$OUT" -czf "$OUT/$DATE-$GPU_SLUG-e2e-logs.tar.gz" "${AUX[@]}" && (cd "$OUT" && rm -f "${AUX[@]}")
exit "$RC"
