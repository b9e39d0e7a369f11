#!/usr/bin/env bash
# The Slurm runner end to end on a real one-node Slurm (Debian's slurm-wlm:
# slurmctld + slurmd, munge) that scripts/start-slurm.sh starts on ports of
# its own and stops at the end. Each job runs the portable smoke unit: the
# smoke image pushed by digest to the staging registry (127.0.0.1:5000, a
# repository of this run's own) and `kiln export units`' docker line. No GPU
# on the node, so:
#   (a) the smoke unit of a real kiln-built image (offline.toml's CUDA 12.4
#       runtime, through docker on this machine) -> no-gpu, with the node
#       and a GPU count of 0; never a pass; the job's script names the smoke
#       image by digest, and the registry holds that digest;
#   (b) a job whose container CLI prints garbage and exits 2 -> failed,
#       naming the job's log files;
#   (c) a job that sleeps past its 1-minute time limit -> timed-out;
#   (d) a job cancelled with scancel while it runs -> cancelled;
#   (e) one verify with two Slurm runner classes (one job per image x
#       runner class): both jobs on the cluster at once while kiln waits;
#       then SIGINT to kiln: it scancels both, records them cancelled and
#       dies of SIGINT (130); no kiln job is left in the queue. (Two runner
#       classes, not two images: offline.toml's only other image with a gpu
#       policy needs a CUDA 11.8 toolchain CI does not build, and its devel
#       image is 5.6 GB to push.)
# Skipped (77) only when slurm-wlm or munge is not installed.
# Usage: slurm_e2e.sh KILN
set -uo pipefail
kiln=$(realpath "$1")
for b in sbatch scontrol scancel squeue slurmctld slurmd munged; do
  command -v "$b" >/dev/null || { echo "slurm-e2e: $b is not installed (scripts/install-deps.sh): skipped"; exit 77; }
done
started=$(date +%s)
passed=0 failed=0
check() { local n=$1; shift; if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $n"; fi; }
tmp=$(mktemp -d /var/tmp/kiln-slurm-e2e.XXXXXX)
chmod 0755 "$tmp"
cluster=$tmp/cluster
export KILN_SLURM_PORT=${KILN_SLURM_TEST_PORT:-6917}
cleanup() {
  scripts/start-slurm.sh --stop "$cluster" >/dev/null 2>&1
  # The engine's tags of what kiln pushed (the images stay under their kiln.local names).
  [[ -n "${repo:-}" ]] && docker images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep -E "^${reg:-127.0.0.1:5000}/$repo(-smoke)?:" | xargs -r docker rmi >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
give_up() { echo "slurm-e2e: $1"; [[ -n "${2:-}" ]] && tail -n 30 "$2"; echo "$passed passed, $((failed + 1)) failed"; exit 1; }

sock=$(scripts/start-engine.sh) || give_up "no engine"
reg=$(scripts/start-registry.sh) || give_up "no registry (scripts/start-registry.sh)"
export DOCKER_HOST=unix://$sock
scripts/make-bases.sh 13 >"$tmp/bases.log" 2>&1 || give_up "no Debian 13 base" "$tmp/bases.log"
conf=$(scripts/start-slurm.sh "$cluster" 2>"$tmp/slurm-start.log") || give_up "Slurm did not start" "$tmp/slurm-start.log"
eval "$conf"  # SLURM_CONF
check "start-slurm.sh again: idempotent, same cluster" bash -c "[[ \"\$(scripts/start-slurm.sh '$cluster')\" == '$conf' ]]"
node=$(hostname -s)

# offline.toml with Slurm runners added: one that runs the real smoke unit,
# and three whose container CLI is a misbehaving peer (tests/verify/data).
data=$PWD/tests/verify/data
m=$tmp/offline.toml
# A staging repository of this run's own (the registry is shared).
repo="kiln-test/slurm-e2e-$(tr 'A-Z' 'a-z' <<<"${tmp##*.}")"
sed -e "s|^repository = .*|repository = \"$repo\"|" -e "s|^url = \"127.0.0.1:5000\"|url = \"$reg\"|" matrices/offline.toml >"$m"
grep -q "^repository = \"$repo\"" "$m" || give_up "offline.toml's [registry] changed: cannot point it at $repo"
cat >>"$m" <<TOML

[runners.slurm]
gpu = "slurm"
gpus = 0                  # the node has no GPU: --gres=gpu:N could never be met
time_limit = 5
job_dir = "$tmp/jobs"

[runners.slurm-garbage]
gpu = "slurm"
gpus = 0
container_cli = "$data/slurm-docker-garbage.sh"
job_dir = "$tmp/jobs"

[runners.slurm-timeout]
gpu = "slurm"
gpus = 0
time_limit = 1
container_cli = "$data/slurm-docker-hang.sh"
job_dir = "$tmp/jobs"

[runners.slurm-cancel]
gpu = "slurm"
gpus = 0
time_limit = 5
container_cli = "$data/slurm-docker-hang.sh"
job_dir = "$tmp/jobs"

[runners.slurm-int-a]
gpu = "slurm"
gpus = 0
time_limit = 5
container_cli = "$data/slurm-docker-hang.sh"
job_dir = "$tmp/jobs"

[runners.slurm-int-b]
gpu = "slurm"
gpus = 0
time_limit = 5
container_cli = "$data/slurm-docker-hang.sh"
job_dir = "$tmp/jobs"
TOML

combo=cuda12.4-debian13-runtime
"$kiln" build "$m" --only 'cuda12.4-debian13-*' --state-dir "$tmp/a" >"$tmp/build.log" 2>&1
check "the runtime and devel images build (exit 0)" test $? -eq 0
built=$(date +%s)

verify() {  # verify NAME RUNNER: JSON in $tmp/NAME.json, exit code in $tmp/NAME.rc
  "$kiln" verify "$m" --only "$combo" --runner "$2" --state-dir "$tmp/$1" --format json >"$tmp/$1.json" 2>"$tmp/$1.err"
  echo $? >"$tmp/$1.rc"
}
gpu() {  # gpu NAME PYTHON-CONDITION on the gpu check `k` of the one combination `c`
  python3 -c "
import json, sys
j = json.load(open(sys.argv[1])); c = j['combos'][0]
k = [x for x in c['checks'] if x['check'] == 'gpu'][0]
ok = $2
if not ok: print(json.dumps(k, indent=1)[:3000])
sys.exit(0 if ok else 1)" "$tmp/$1.json"
}

# (a) the real smoke unit, through docker, in a Slurm job.
verify a slurm
check "(a) verify exit 1: nothing is verified without a GPU" test "$(cat "$tmp/a.rc")" -eq 1
check "(a) gpu check no-gpu, never a pass" gpu a "k['status'] == 'no-gpu' and not c['verified'] and k['detail']['exit_code'] == 3"
check "(a) recorded where: slurm, node $node, 0 GPUs" \
  gpu a "k['detail']['placement']['scheduler'] == 'slurm' and k['detail']['placement']['node'] == '$node' and k['detail']['placement']['gpu_count'] == 0 and k['detail']['placement']['job'] == k['detail']['slurm']['job_id']"
check "(a) the job COMPLETED/FAILED on $node with the suite's exit 3" \
  gpu a "k['detail']['slurm']['node'] == '$node' and k['detail']['slurm']['state'] == 'FAILED' and k['detail']['slurm']['exit_code'] == 3"
check "(a) the suite's own report came back through the output file" \
  gpu a "k['detail']['verdict'] == 'no-gpu' and k['detail']['gpu']['usable'] is False and 'env' in k['detail']['sections']"
check "(a) says the suite found no usable GPU" gpu a "any('found no usable GPU' in p for p in k['problems'])"
script=$(ls "$tmp"/jobs/offline/$combo.slurm.sbatch 2>/dev/null)
echo "slurm-e2e: the batch script of (a), $script:"; sed 's/^/  /' "$script"
check "(a) the sbatch script: time limit, job name, no --gres" \
  bash -c "grep -qx '#SBATCH --time=5' '$script' && grep -qx '#SBATCH --job-name=kiln-smoke:offline:$combo:slurm' '$script' && ! grep -q -- --gres '$script'"
smoke_ref=$(python3 -c "import json,sys; k=[x for x in json.load(open(sys.argv[1]))['combos'][0]['checks'] if x['check']=='gpu'][0]; print(k['detail']['slurm']['image'])" "$tmp/a.json")
check "(a) the smoke image is named by digest in the staging registry ($smoke_ref)" \
  bash -c "[[ '$smoke_ref' =~ ^$reg/$repo-smoke@sha256:[0-9a-f]{64}\$ ]]"
check "(a) the job runs the unit's docker line: the image by digest, no network, read-only root" \
  bash -c "grep -qx \"timeout 300 docker run --rm --network none --read-only --tmpfs /tmp:rw,size=256m --shm-size 1073741824 .* --entrypoint /opt/kiln-smoke/kiln-smoke-unit $smoke_ref </dev/null\" '$script'"
check "(a) the registry holds that digest (a node that never saw kiln's engine can pull it)" \
  curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json' \
  "http://$reg/v2/$repo-smoke/manifests/${smoke_ref#*@}"
check "(a) taken back as --ingest takes a unit's result: this image id, this suite hash" \
  gpu a "k['detail']['unit']['schema'] == 'kiln.smoke-unit/v1' and k['detail']['unit']['image_id'] == c['image_id'] and k['detail']['unit']['suite_hash'] == k['detail']['suite_hash'] and k['detail']['unit']['exit_code'] == 3"
check "(a) the ledger holds the no-gpu verdict of runner slurm" python3 -c "
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute('select status from verdicts where runner = ? and check_name = ?', ('slurm', 'gpu')).fetchall()
sys.exit(0 if rows == [('no-gpu',)] else 1)" "$tmp/a/state.db"

ran_a=$(date +%s)
# (b), (c), (d) start from (a)'s ledger: its static check passed on this
# image id and is reused, so each runs only its Slurm job.
for n in b c d; do cp -r "$tmp/a" "$tmp/$n"; done
# (b) and (c) at once (the node has 2 CPUs, a job takes 1); then (d).
verify b slurm-garbage &
vb=$!
verify c slurm-timeout &
vc=$!
wait "$vb"
check "(b) verify exit 1" test "$(cat "$tmp/b.rc")" -eq 1
check "(b) garbage and exit 2: failed, naming the job's logs" \
  gpu b "k['status'] == 'failed' and any('printed no JSON report' in p for p in k['problems']) and any('$tmp/jobs/offline/' in p and '.out' in p for p in k['problems'])"
out_b=$(python3 -c "import json,sys; k=[x for x in json.load(open(sys.argv[1]))['combos'][0]['checks'] if x['check']=='gpu'][0]; print(k['detail']['slurm']['output'])" "$tmp/b.json")
check "(b) the output file holds what the container printed" grep -q "this is not a smoke report" "$out_b"

# (d) cancelled while it runs: kiln waits on it; scancel from outside.
verify d slurm-cancel &
vd=$!
name="kiln-smoke:offline:$combo:slurm-cancel"
state=""
for _ in $(seq 1 120); do
  state=$(squeue -h -n "$name" -o %T 2>/dev/null)
  [[ "$state" == RUNNING ]] && break
  sleep 1
done
check "(d) the job ran (state: ${state:-none})" test "$state" = RUNNING
scancel -n "$name"
wait "$vd"
check "(d) verify exit 1" test "$(cat "$tmp/d.rc")" -eq 1
check "(d) cancelled, never a pass" gpu d "k['status'] == 'cancelled' and not c['verified'] and 'was cancelled' in k['problems'][0]"

# (e) two runner classes in one verify: every job submitted before kiln
# waits for any. Then SIGINT (kiln as a shell's background job would
# ignore it: env restores the default, as a terminal's Ctrl-C finds it).
cp -r "$tmp/a" "$tmp/e"
env --default-signal=INT "$kiln" verify "$m" --only "$combo" --runner slurm-int-a --runner slurm-int-b --state-dir "$tmp/e" \
  --format json >"$tmp/e.json" 2>"$tmp/e.err" &
ve=$!
both=""
for _ in $(seq 1 240); do
  both=$(squeue -h -t pending,running -o '%i %j %T' 2>/dev/null | grep -E ':slurm-int-[ab] ' || true)
  [[ $(grep -c . <<<"$both") -eq 2 ]] && break
  kill -0 "$ve" 2>/dev/null || break
  sleep 0.5
done
echo "slurm-e2e: (e) in the queue while kiln waits:"; sed 's/^/  /' <<<"$both"
check "(e) both jobs are on the cluster at the same time" \
  bash -c "grep -q ':$combo:slurm-int-a ' <<<'$both' && grep -q ':$combo:slurm-int-b ' <<<'$both'"
kill -INT "$ve"
wait "$ve"
re=$?
check "(e) interrupted verify dies of SIGINT (exit $re, 130 expected)" test "$re" -eq 130
check "(e) kiln says what it cancelled" grep -q "interrupted: slurm job(s) .* scancel'd and recorded cancelled" "$tmp/e.err"
left=""
for _ in $(seq 1 20); do  # scancel'd: gone once slurmd has killed the job (KillWait=2)
  left=$(squeue -h -o '%i %j %T' 2>/dev/null | grep -E ':slurm-int-[ab] ' || true)
  [[ -z "$left" ]] && break
  sleep 0.5
done
check "(e) no kiln job of the interrupted verify is left in the queue (${left:-none})" test -z "$left"
check "(e) both recorded cancelled, never a pass" python3 -c "
import sqlite3, sys, json
rows = sqlite3.connect(sys.argv[1]).execute(\"select runner, status, detail from verdicts where runner like 'slurm-int-%' and check_name = 'gpu'\").fetchall()
ok = sorted(r[0] for r in rows) == ['slurm-int-a', 'slurm-int-b'] and all(r[1] == 'cancelled' and 'interrupted' in json.loads(r[2])['problems'][0] for r in rows)
if not ok: print(rows)
sys.exit(0 if ok else 1)" "$tmp/e/state.db"
ran_e=$(date +%s)

wait "$vc"
check "(c) verify exit 1" test "$(cat "$tmp/c.rc")" -eq 1
check "(c) past its 1-minute limit: timed-out, never a pass" \
  gpu c "k['status'] == 'timed-out' and not c['verified'] and 'time limit of 1 min' in k['problems'][0] and k['detail']['slurm']['state'] == 'TIMEOUT'"

# Nothing of kiln's is left in the queue.
check "the queue is empty" bash -c "[[ -z \"\$(squeue -h -o %i)\" ]]"
ended=$(date +%s)
echo "slurm-e2e: setup and build $((built - started)) s, (a) $((ran_a - built)) s, (b)-(e) $((ended - ran_a)) s ((e) done at $((ran_e - ran_a)) s), whole test $((ended - started)) s"
echo "slurm-e2e: $passed passed, $failed failed"
((failed == 0))
