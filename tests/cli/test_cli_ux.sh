#!/usr/bin/env bash
# What a new user trips on: version and typos, completion, the one
# JSON vocabulary and JSON errors, -o and --quiet, exit codes that match the
# words (--only matching nothing), a read-only status, plan for people
# (--valid, --only, exclusions by rule, a column per GPU), explain, tables
# sized to their content. Usage: test_cli_ux.sh PATH/TO/kiln
set -uo pipefail
kiln=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

# shellcheck source=../support/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
rc_of() { "$@" >/dev/null 2>&1; echo $?; }

# --- item 2: version, typos, completion, generate --format json, -o, --quiet --
"$kiln" version >"$tmp/v.txt"
check "version exit 0" test $? -eq 0
check "version names kiln and the catalog" grep -Eq "^kiln [0-9]+\.[0-9]+\.[0-9]+$" "$tmp/v.txt"
check "version names the catalog" grep -q "^catalog " "$tmp/v.txt"
"$kiln" version --format json >"$tmp/v.json"
check "version json" json_assert "$tmp/v.json" "j['schema']=='kiln.version/v1' and j['kiln'] and j['catalog_version']"
for verb in plan build status verify promote run audit check-driver explain generate; do
  out=$("$kiln" $verb --version 2>&1)
  check "$verb --version" test "$out" = "$(head -1 "$tmp/v.txt")"
done
"$kiln" plna matrices/offline.toml >"$tmp/typo.out" 2>"$tmp/typo.err"
check "mistyped verb exit 2" test $? -eq 2
check "mistyped verb: did you mean" grep -q "'plna' is not a kiln verb. Did you mean 'plan'?" "$tmp/typo.err"
"$kiln" stauts 2>"$tmp/typo2.err"
check "stauts -> status" grep -q "Did you mean 'status'?" "$tmp/typo2.err"
"$kiln" completion bash >"$tmp/kiln.bash"
check "bash completion parses" bash -n "$tmp/kiln.bash"
out=$(bash -c 'source "$1"; COMP_WORDS=(kiln pl); COMP_CWORD=1; _kiln; echo "${COMPREPLY[*]}"' _ "$tmp/kiln.bash")
check "bash completes verbs ($out)" test "$out" = "plan"
out=$(bash -c 'source "$1"; COMP_WORDS=(kiln plan --va); COMP_CWORD=2; _kiln; echo "${COMPREPLY[*]}"' _ "$tmp/kiln.bash")
check "bash completes a verb's flags ($out)" test "$out" = "--valid"
out=$(bash -c 'source "$1"; COMP_WORDS=(kiln plan --format ""); COMP_CWORD=3; _kiln; echo "${COMPREPLY[*]}"' _ "$tmp/kiln.bash")
check "bash completes --format values ($out)" test "$out" = "table json"
"$kiln" completion zsh >"$tmp/_kiln"
check "zsh completion is a compdef" grep -q "^#compdef kiln" "$tmp/_kiln"
if command -v zsh >/dev/null; then check "zsh completion parses" zsh -n "$tmp/_kiln"; fi
check "zsh completion has plan's --valid" grep -q "'--valid\[Show only valid combinations\]'" "$tmp/_kiln"

"$kiln" --help-all >"$tmp/help-all.txt"
check "--help-all has every verb's flags" bash -c "grep -q -- '--valid' '$tmp/help-all.txt' && grep -q -- '--dry-run' '$tmp/help-all.txt'"
if command -v help2man >/dev/null; then
  help2man --no-info --help-option=--help-all "$kiln" >"$tmp/kiln.1"
  check "man page made by help2man, with the verbs" bash -c "grep -q '^.TH KILN' '$tmp/kiln.1' && grep -q 'explain' '$tmp/kiln.1'"
else
  echo "SKIP: help2man is not installed (scripts/install-deps.sh installs it)"
fi
"$kiln" generate matrices/offline.toml -o "$tmp/gen" --format json >"$tmp/gen.json"
check "generate --format json" json_assert "$tmp/gen.json" \
  "j['schema']=='kiln.generate/v1' and j['summary']['rendered']==len(j['combos'])>0 and all(c['id'] and c['dir'] for c in j['combos'])"
"$kiln" plan matrices/offline.toml --format json -o "$tmp/plan.json" >"$tmp/plan.stdout"
check "-o FILE writes the document" json_assert "$tmp/plan.json" "j['schema']=='kiln.plan/v2'"
check "-o FILE: nothing on stdout" test ! -s "$tmp/plan.stdout"
"$kiln" plan matrices/offline.toml --quiet >"$tmp/q.out"
check "--quiet: no table" test ! -s "$tmp/q.out"
"$kiln" plan matrices/offline.toml --quiet --format json >"$tmp/qj.out"
check "--quiet --format json still writes JSON" json_assert "$tmp/qj.out" "j['schema']=='kiln.plan/v2'"

# --- item 3: one vocabulary, errors in JSON --------------------------------
check "plan: combos keyed by id" json_assert "$tmp/plan.json" "all('id' in c for c in j['combos'])"
"$kiln" check-driver --driver 580.65.06 matrices/offline.toml --format json >"$tmp/cd.json"
check "check-driver matrix: combos keyed by id" json_assert "$tmp/cd.json" "j['schema']=='kiln.check-driver/v3' and all('id' in c for c in j['combos'])"
printf 'name = "x"\n[axes]\ncuda = ["12.4"]\nos = ["ubuntu22.04"]\nflavor = ["runtime"]\nbogus = 1\n' >"$tmp/bad.toml"
"$kiln" plan "$tmp/bad.toml" --format json >"$tmp/err.json" 2>"$tmp/err.txt"
check "bad input under json: exit 2" test $? -eq 2
check "bad input under json: error document on stdout" json_assert "$tmp/err.json" \
  "j['schema']=='kiln.error/v1' and j['exit_code']==2 and j['kind']=='input' and j['diagnostics'][0]['line']==6 and j['diagnostics'][0]['column']==1 and 'bogus' in j['diagnostics'][0]['message']"
check "bad input under json: the human line on stderr" grep -q "bad.toml:6:1: error: unknown key 'bogus'" "$tmp/err.txt"
"$kiln" plan --frobnicate --format json >"$tmp/usage.json" 2>/dev/null
check "unknown flag under json: exit 2 and JSON" json_assert "$tmp/usage.json" "j['kind']=='usage' and j['exit_code']==2 and 'frobnicate' in j['message']"

# --- item 4: --only matching nothing is exit 2 naming the pattern ----------
for verb in build verify promote run; do
  "$kiln" $verb matrices/offline.toml --only 'no-such-*' --state-dir "$tmp/never-$verb" >/dev/null 2>"$tmp/only.err"
  rc=$?
  check "$verb --only matching nothing: exit 2 (got $rc)" test $rc -eq 2
  check "$verb --only: names the pattern" grep -q "'no-such-\*' matches no valid combination of matrix 'offline'" "$tmp/only.err"
  check "$verb --only: nothing written" test ! -e "$tmp/never-$verb"
done
"$kiln" plan matrices/offline.toml --only 'zzz' >/dev/null 2>"$tmp/only.err"
check "plan --only matching nothing: exit 2" test $? -eq 2

# --- item 5: status is read-only and finds the ledger ----------------------
mkdir -p "$tmp/empty/sub"
(cd "$tmp/empty/sub" && "$kiln" status "$OLDPWD/matrices/offline.toml" >"$tmp/st.txt")
check "status without a ledger: exit 0" test $? -eq 0
check "status without a ledger: creates none" test ! -e "$tmp/empty/sub/.kiln" -a ! -e "$tmp/empty/.kiln"
check "status without a ledger: says so" grep -q "no ledger (.kiln/state.db) here or in a parent directory" "$tmp/st.txt"
check "status without a ledger: every combination pending" grep -Eq "^cuda11.8-debian12-runtime +pending" "$tmp/st.txt"
"$kiln" status matrices/offline.toml --state-dir "$tmp/none" --format json >"$tmp/st.json"
check "status --state-dir without a ledger: creates none" test ! -e "$tmp/none"
check "status json: ledger null, combos by id" json_assert "$tmp/st.json" "j['ledger'] is None and all(c['status']=='pending' and 'id' in c for c in j['combos'])"

# --- item 8: plan for people ------------------------------------------------
"$kiln" plan matrices/pytorch.toml >"$tmp/pt.txt"
n_excluded=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['excluded'])" <("$kiln" plan matrices/pytorch.toml --format json))
check "exclusions grouped: no line per excluded combination" test "$(grep -c "  excluded  " "$tmp/pt.txt")" -eq 0
check "exclusions grouped: a header with the count" grep -Eq "^$n_excluded excluded by [0-9]+ rules" "$tmp/pt.txt"
check "exclusions grouped: the PyTorch build rule with a count" grep -Eq "^pytorch-cuda-build +[0-9]+ +pytorch" "$tmp/pt.txt"
"$kiln" plan matrices/pytorch.toml --valid >"$tmp/valid.txt"
check "--valid: no exclusion section" bash -c "! grep -q 'EXCLUDED BY RULE' '$tmp/valid.txt'"
check "--valid: says what it hid" grep -q "($n_excluded excluded not shown: --valid)" "$tmp/valid.txt"
"$kiln" plan matrices/pytorch.toml --valid --only 'pytorch2.11-*-runtime' --format json >"$tmp/only.json"
check "--valid --only in JSON" json_assert "$tmp/only.json" \
  "len(j['combos'])>0 and all(c['status']=='valid' and c['id'].startswith('pytorch2.11-') and c['id'].endswith('-runtime') for c in j['combos'])"
"$kiln" plan matrices/pytorch.toml --valid --only 'pytorch2.11-cuda13.0-*' --gpu P100 --gpu H100 >"$tmp/gpus.txt"
check "a column per queried GPU" grep -Eq "^COMBINATION +STATUS .* ON P100 +ON H100 +USABLE$" "$tmp/gpus.txt"
check "the GPU legend" grep -q "^native: SASS for that GPU; ptx:" "$tmp/gpus.txt"
check "no trailing spaces" bash -c "! grep -q ' $' '$tmp/gpus.txt' '$tmp/pt.txt'"

id=pytorch2.6-cuda12.8-cudnn9-ubuntu22.04-runtime
"$kiln" explain $id matrices/pytorch.toml >"$tmp/ex.txt"
check "explain an excluded one: exit 0" test $? -eq 0
check "explain: the rule" grep -q "status      excluded by rule pytorch-cuda-build" "$tmp/ex.txt"
check "explain: why" grep -q "PyTorch 2.6.0 publishes no CUDA 12.8 build" "$tmp/ex.txt"
(cd "$tmp/empty" && "$kiln" explain cuda12.4-debian13-devel "$OLDPWD/matrices/offline.toml" >"$tmp/ex2.txt")
check "explain a valid one: versions" grep -q "resolved    CUDA 12.4" "$tmp/ex2.txt"
check "explain: rendered tags" grep -q "^  tag " "$tmp/ex2.txt"
check "explain: ledger state" grep -q "ledger      none here or in a parent directory" "$tmp/ex2.txt"
check "explain: still no ledger" test ! -e "$tmp/empty/.kiln"
"$kiln" explain cuda12.4-debian13-devel matrices/offline.toml --format json >"$tmp/ex.json"
check "explain json" json_assert "$tmp/ex.json" "j['schema']=='kiln.explain/v1' and j['combo']['id']=='cuda12.4-debian13-devel'"
"$kiln" explain cuda12.4-debian13-devl matrices/offline.toml 2>"$tmp/ex.err"
check "explain an unknown id: exit 2" test $? -eq 2
check "explain an unknown id: the closest" grep -q "closest: cuda12.4-debian13-devel" "$tmp/ex.err"

# --- item 6: tables sized to content, colour rules --------------------------
"$kiln" check-driver --driver 580.65.06 matrices/offline.toml >"$tmp/cd.txt"
check "check-driver: the column fits the longest id" grep -Eq "^cuda11.8-debian12-runtime  ok " "$tmp/cd.txt"
check "check-driver: no trailing spaces" bash -c "! grep -q ' $' '$tmp/cd.txt'"

esc=$(printf '\033[')
"$kiln" check-driver --driver 580.65.06 matrices/offline.toml >"$tmp/pipe.txt"
check "no colour into a pipe" bash -c "! grep -qF '$esc' '$tmp/pipe.txt'"
script -qec "$kiln check-driver --driver 580.65.06 matrices/offline.toml" /dev/null >"$tmp/tty.txt"
check "colour on a terminal" grep -qF "${esc}32mok${esc}0m" "$tmp/tty.txt"
NO_COLOR=1 script -qec "$kiln check-driver --driver 580.65.06 matrices/offline.toml" /dev/null >"$tmp/nocolor.txt"
check "NO_COLOR: no colour on a terminal" bash -c "grep -q 'ok' '$tmp/nocolor.txt' && ! grep -qF '$esc' '$tmp/nocolor.txt'"
script -qec "$kiln check-driver --driver 580.65.06 matrices/offline.toml -o $tmp/file.txt" /dev/null >/dev/null
check "no colour into -o FILE" bash -c "grep -q 'ok' '$tmp/file.txt' && ! grep -qF '$esc' '$tmp/file.txt'"


# --- one "why not" key, -o everywhere, exit codes that mean one thing -------
"$kiln" check-driver --driver 535.104.05 --gpu P100 matrices/offline.toml --format json >"$tmp/cdr.json"
check "check-driver: why not is 'reason', a string" json_assert "$tmp/cdr.json" \
  "all(isinstance(c['reason'], str) and c['reason'] and 'why_not' not in c for c in j['combos'] if not c['ok'])"
"$kiln" check-driver --driver 580.65.06 matrices/offline.toml --format json >"$tmp/cdok.json"
check "check-driver: reason null when ok" json_assert "$tmp/cdok.json" "all(c['reason'] is None for c in j['combos'] if c['ok'])"
"$kiln" plan matrices/pytorch.toml --gpu P100 --format json >"$tmp/pq.json"
check "plan: excluded and not-usable say 'reason', never why/why_not" json_assert "$tmp/pq.json" \
  "all('why_not' not in c.get('query', {}) and 'why' not in c for c in j['combos']) and any(c['status']=='excluded' and c['reason'] for c in j['combos']) and any(c.get('query', {}).get('reason') for c in j['combos'])"
"$kiln" catalog check --redistrib tests/survey/data/redistrib_13.0.2.json -o "$tmp/cc.txt" >"$tmp/cc.stdout"
check "catalog check -o FILE: the table in the file" grep -q "fact(s) compared" "$tmp/cc.txt"
check "catalog check -o FILE: nothing on stdout" test ! -s "$tmp/cc.stdout"
check "catalog check: no trailing spaces" bash -c "! grep -q ' $' '$tmp/cc.txt'"
"$kiln" catalog check --redistrib tests/survey/data/redistrib_13.0.2.json --format json -o "$tmp/cc.json"
check "catalog check --format json -o FILE" json_assert "$tmp/cc.json" "j['schema']=='kiln.catalog-check/v1'"
"$kiln" config matrices/offline.toml --no-config --format json -o "$tmp/config.json" >"$tmp/config.stdout"
check "config -o FILE" json_assert "$tmp/config.json" "j['schema']=='kiln.config/v1' and j['config'] is None and j['matrix']=='matrices/offline.toml'"
check "config -o FILE: nothing on stdout" test ! -s "$tmp/config.stdout"
mkdir -p "$tmp/lockwait"
KILN_LOCK_WAIT=soon "$kiln" build matrices/offline.toml --state-dir "$tmp/lockwait" --format json >"$tmp/lw.json" 2>"$tmp/lw.err"
check "a refused KILN_LOCK_WAIT is bad input: exit 2, not 70" test $? -eq 2
check "a refused KILN_LOCK_WAIT: kind input" json_assert "$tmp/lw.json" "j['kind']=='input' and j['exit_code']==2"
check "a refused KILN_LOCK_WAIT: named" grep -q "KILN_LOCK_WAIT=soon" "$tmp/lw.err"
DOCKER_HOST=nonsense "$kiln" build matrices/offline.toml --state-dir "$tmp/lockwait" 2>"$tmp/dh.err" >/dev/null
check "a refused DOCKER_HOST is bad input: exit 2, not 70" test $? -eq 2
check "a refused DOCKER_HOST: named" grep -q "DOCKER_HOST" "$tmp/dh.err"
"$kiln" verify matrices/offline.toml --runner nosuch --state-dir "$tmp/lockwait" 2>"$tmp/rn.err" >/dev/null
check "an unknown --runner: exit 2" test $? -eq 2
check "an unknown --runner: says where runners were looked for" \
  grep -q "no runner 'nosuch': looked in the matrix .*offline.toml's \[runners\.\*\] and in kiln's config file" "$tmp/rn.err"

echo "cli_ux: $passed passed, $failed failed"
((failed == 0))
