#!/usr/bin/env bash
# End-to-end checks of `kiln plan` and `kiln generate` through the binary:
# the acceptance criteria of the foundation, exit codes, and bad input that
# must write nothing. Usage: test_cli.sh PATH/TO/kiln
set -uo pipefail
kiln=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

# shellcheck source=../support/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"


# --- plan: the questions the issue asks -------------------------------------
"$kiln" plan matrices/pytorch.toml --format json >"$tmp/pt.json"
check "plan json exit 0" test $? -eq 0
combo() { echo "[c for c in j['combos'] if c['id']=='$1'][0]"; }
c26=$(combo pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime)
check "2.6+cu124 valid" json_assert "$tmp/pt.json" "$c26['status']=='valid'"
check "2.6+cu124 cudnn" json_assert "$tmp/pt.json" "$c26['versions']['cudnn']=='9.1.0.70'"
check "2.6+cu124 nccl" json_assert "$tmp/pt.json" "$c26['versions']['nccl']=='2.21.5'"
check "2.6+cu124 driver" json_assert "$tmp/pt.json" "$c26['min_driver']=='525.60.13'"
c28=$(combo pytorch2.6-cuda12.8-cudnn9-ubuntu22.04-runtime)
check "2.6+cu128 excluded" json_assert "$tmp/pt.json" "$c28['status']=='excluded' and 'publishes no CUDA 12.8 build' in $c28['reason']"

"$kiln" plan matrices/pytorch.toml --format json --gpu P100 >"$tmp/p100.json"
check "--gpu P100: CUDA 13.0 unusable" json_assert "$tmp/p100.json" \
  "all(c['query']['usable'] is False and 'cannot target P100' in c['query']['reason'] for c in j['combos'] if c['versions']['cuda'].startswith('13.0') and c['status']=='valid')"
check "--gpu P100: some CUDA 12 usable" json_assert "$tmp/p100.json" "any(c['query']['usable'] for c in j['combos'])"

# A repeatable flag takes one value (or a comma list) and never the matrix after it.
"$kiln" plan --gpu P100 matrices/pytorch.toml --format json >"$tmp/p100b.json"
check "--gpu before the matrix keeps the matrix" json_assert "$tmp/p100b.json" "j['matrix']['name']=='pytorch' and list(j['query']['gpus'])==['P100']"
"$kiln" plan --gpu P100,T4 --gpu H100 matrices/pytorch.toml --format json >"$tmp/three.json"
check "--gpu comma list and repeats" json_assert "$tmp/three.json" "j['matrix']['name']=='pytorch' and all(len(c['query']['gpus'])==3 for c in j['combos'] if c['status']=='valid')"

check "freshness in JSON" json_assert "$tmp/pt.json" "'catalog_collected' in j and isinstance(j['warnings'], list)"

# --- "latest" and the catalog's age (KILN_TODAY stands in for the clock) ----
printf 'name = "latest"\n[axes]\npytorch = ["latest"]\ncuda = ["latest"]\nos = ["ubuntu24.04"]\nflavor = ["runtime"]\n[tags]\ntemplates = ["{id}"]\n' >"$tmp/latest.toml"
KILN_TODAY=2099-01-01 "$kiln" plan "$tmp/latest.toml" >"$tmp/latest.txt"
check "plan latest exit 0" test $? -eq 0
check "plan header says the catalog's freshness" grep -Eq "(facts collected [0-9-]+|collection date not recorded)\)$" "$tmp/latest.txt"
check "a stale catalog asked for latest warns" grep -q '^warning: the matrix asks for "latest"' "$tmp/latest.txt"
KILN_TODAY=2099-01-01 "$kiln" plan matrices/offline.toml >"$tmp/offline.txt"
check "no latest, no warning" bash -c "! grep -q '^warning:' '$tmp/offline.txt'"

"$kiln" plan matrices/legacy-gpus.toml >"$tmp/legacy.txt"
check "table output" grep -q "P100" "$tmp/legacy.txt"
check "inferred facts are shown" grep -q "inferred" "$tmp/legacy.txt"
"$kiln" plan >"$tmp/default.txt"
check "default matrix is offline" grep -q "^offline:" "$tmp/default.txt"

# --- bad input: exit 2, file:line:col, nothing written -----------------------
printf 'name = "x"\n[axes]\ncuda = ["12.4"]\nos = ["ubuntu22.04"]\nflavor = ["runtime"]\nbogus = 1\n' >"$tmp/bad.toml"
"$kiln" plan "$tmp/bad.toml" 2>"$tmp/err.txt"
check "bad matrix exit 2" test $? -eq 2
check "bad matrix names file:line:col" grep -q "bad.toml:6:1: error: unknown key 'bogus'" "$tmp/err.txt"
"$kiln" generate "$tmp/bad.toml" -o "$tmp/never" 2>/dev/null
check "generate on bad input exit 2" test $? -eq 2
check "generate on bad input writes nothing" test ! -e "$tmp/never"
printf 'name = "x"\n[axes\n' >"$tmp/syntax.toml"
"$kiln" plan "$tmp/syntax.toml" 2>"$tmp/err2.txt"
check "syntax error exit 2" test $? -eq 2
check "syntax error position" grep -q "syntax.toml:2:" "$tmp/err2.txt"
"$kiln" plan "$tmp/missing.toml" 2>/dev/null
check "missing file exit 2" test $? -eq 2
"$kiln" plan matrices/offline.toml --driver banana 2>/dev/null
check "bad --driver exit 2" test $? -eq 2
"$kiln" plan matrices/offline.toml --gpu Voodoo2 2>/dev/null
check "unknown --gpu exit 2" test $? -eq 2
"$kiln" plan --frobnicate 2>/dev/null
check "unknown flag exit 2" test $? -eq 2

# --- generate: deterministic, bake-compatible --------------------------------
"$kiln" generate matrices/pytorch.toml -o "$tmp/g1" >/dev/null
"$kiln" generate matrices/pytorch.toml -o "$tmp/g2" >/dev/null
check "generate twice gives identical trees" diff -r "$tmp/g1" "$tmp/g2"
check "plan.json written" test -s "$tmp/g1/plan.json"
check "kiln.json per combination" test -s "$tmp/g1/pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime/kiln.json"
if docker buildx version >/dev/null 2>&1; then
  (cd "$tmp/g1" && docker buildx bake -f docker-bake.json --print >"$tmp/bake.out" 2>&1)
  check "buildx bake --print accepts the bake file" test $? -eq 0
else
  echo "SKIP: docker buildx is not installed (scripts/install-deps.sh installs it)"
fi

echo "cli: $passed passed, $failed failed"
((failed == 0))
