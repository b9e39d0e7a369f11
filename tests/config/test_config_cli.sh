#!/usr/bin/env bash
# kiln.toml through the real binary: a config file supplies a runner and a
# registry the matrix does not name; `kiln plan` names images in that
# registry, `kiln config` says where every setting came from (table and
# JSON), the matrix wins per runner, --no-config/KILN_CONFIG/XDG pick the
# file, errors are file:line:col with exit 2, and the config's state_dir is
# the default --state-dir. Usage: test_config_cli.sh PATH/TO/kiln
set -uo pipefail
kiln=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

# shellcheck source=../support/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"

# No user config may leak in: HOME and XDG_CONFIG_HOME are ours.
export HOME=$tmp/home XDG_CONFIG_HOME=$tmp/xdg
unset KILN_CONFIG
mkdir -p "$HOME" "$tmp/site/.git" "$tmp/site/sub/deeper" "$tmp/elsewhere/.git"
site=$tmp/site
cat >"$site/kiln.toml" <<TOML
state_dir = "state"

[registry]
url = "127.0.0.1:5999"
insecure = true
credential_helper = "kilntest"

[runners.cfgbuilder]
engine = "unix://$tmp/no-engine.sock"
backend = "engine"

[runners.h100]
engine = "unix:///run/site-podman.sock"
gpu = "nvidia"
gpu_classes = ["sm_90"]

[runners.farm]
backend = "buildx"
builder = "k8s-farm"
TOML
cat >"$site/sub/m.toml" <<'TOML'
name = "cfgtest"
targets = ["H100"]
[axes]
cuda = ["12.4"]
os = ["debian13"]
flavor = ["runtime"]
[tags]
templates = ["cuda{cuda}-{os}-{flavor}"]
[[base]]
os = "debian13"
image = "kiln/debian:13"
[runners.h100]
engine = "unix:///run/mine.sock"
gpu = "devices"
gpu_classes = ["sm_90"]
TOML
tag="127.0.0.1:5999/kiln/cfgtest:cuda12.4-debian13-runtime"

# --- found upward from a subdirectory; plan uses the config's registry ------
cd "$site/sub/deeper"
"$kiln" plan ../m.toml --format json >"$tmp/plan.json"
check "plan exit 0" test $? -eq 0
check "plan: image named in the config's registry" json_assert "$tmp/plan.json" "'$tag' in json.dumps(j)"

"$kiln" config ../m.toml >"$tmp/config.txt"
check "config exit 0" test $? -eq 0
cat "$tmp/config.txt"
check "config: which file, found how" grep -qF "config: $site/kiln.toml (found upward from $site/sub/deeper)" "$tmp/config.txt"
check "config: url from kiln.toml:4:7" grep -Eq "^registry.url +127.0.0.1:5999 +$site/kiln.toml:4:7$" "$tmp/config.txt"
check "config: repository is kiln's default" grep -Eq "^registry.repository +kiln/cfgtest +default$" "$tmp/config.txt"
check "config: helper from kiln.toml:6:21" grep -Eq "^registry.credential_helper +docker-credential-kilntest +$site/kiln.toml:6:21$" "$tmp/config.txt"
check "config: state_dir beside kiln.toml" grep -Eq "^state_dir +$site/state +$site/kiln.toml:1:13$" "$tmp/config.txt"
check "config: the matrix's h100 replaces the config's" \
  grep -Eq "^runners.h100 +unix:///run/mine.sock engine gpu=devices sm_90 +\.\./m\.toml:12:1 \(replaces $site/kiln.toml:12:1\)$" "$tmp/config.txt"
check "config: the config's builder is added" grep -Eq "^runners.cfgbuilder +unix://$tmp/no-engine.sock engine gpu=none +$site/kiln.toml:8:1$" "$tmp/config.txt"
check "config: a runner's buildx builder (issue 15)" grep -Eq "^runners.farm +DOCKER_HOST buildx gpu=none builder=k8s-farm +$site/kiln.toml:17:1$" "$tmp/config.txt"

"$kiln" config ../m.toml --format json >"$tmp/config.json"
check "config json exit 0" test $? -eq 0
check "config json: schema and file" json_assert "$tmp/config.json" \
  "j['schema']=='kiln.config/v1' and j['config']['path']=='$site/kiln.toml' and j['config']['used'] is True"
check "config json: registry origins" json_assert "$tmp/config.json" \
  "j['registry']['url']=={'value':'127.0.0.1:5999','from':'$site/kiln.toml:4:7'} and j['registry']['insecure']['value']=='true'"
check "config json: runners in order, with origins" json_assert "$tmp/config.json" \
  "[r['name'] for r in j['runners']]==['h100','cfgbuilder','farm'] and j['runners'][0]['replaces']=='$site/kiln.toml:12:1' and j['runners'][1]['from']=='$site/kiln.toml:8:1'"
check "config json: the farm runner's builder" json_assert "$tmp/config.json" \
  "j['runners'][2]['builder']=='k8s-farm' and j['runners'][2]['backend']=='buildx' and 'builder' not in j['runners'][1]"

# --- choosing the file -------------------------------------------------------
"$kiln" --no-config plan ../m.toml --format json >"$tmp/noconfig.json"
check "--no-config: local names" json_assert "$tmp/noconfig.json" "'127.0.0.1:5999' not in json.dumps(j)"
"$kiln" plan ../m.toml --no-config --format json >"$tmp/noconfig2.json"
check "--no-config after the verb too" json_assert "$tmp/noconfig2.json" "'127.0.0.1:5999' not in json.dumps(j)"
KILN_CONFIG=/dev/null "$kiln" config ../m.toml --format json >"$tmp/devnull.json"
check "KILN_CONFIG=/dev/null: an empty config" json_assert "$tmp/devnull.json" \
  "j['config']['found_by']=='KILN_CONFIG' and j['registry']['url']['value']=='' and [r['name'] for r in j['runners']]==['h100']"
"$kiln" --config "$tmp/missing.toml" config ../m.toml >/dev/null 2>"$tmp/missing.err"
check "--config missing: exit 2" test $? -eq 2
check "--config missing: says so" grep -qF "$tmp/missing.toml: error: no such config file (named by --config)" "$tmp/missing.err"

# Outside the site (its own .git), the XDG file is the one.
mkdir -p "$XDG_CONFIG_HOME/kiln"
printf '[registry]\nurl = "xdg.example:5000"\n' >"$XDG_CONFIG_HOME/kiln/config.toml"
cd "$tmp/elsewhere"
"$kiln" config "$site/sub/m.toml" >"$tmp/xdg.txt"
check "XDG config found" grep -qF "config: $XDG_CONFIG_HOME/kiln/config.toml (\$XDG_CONFIG_HOME)" "$tmp/xdg.txt"
check "XDG config's registry" grep -Eq "^registry.url +xdg.example:5000 " "$tmp/xdg.txt"
cd "$site/sub/deeper"

# --- the matrix opts out ------------------------------------------------------
{ echo "use_config = false"; cat "$site/sub/m.toml"; } >"$site/sub/own.toml"
"$kiln" config ../own.toml >"$tmp/own.txt"
check "use_config = false: not used, where" grep -qF "not used: use_config = false at ../own.toml:1:14" "$tmp/own.txt"
check "use_config = false: no config runner" bash -c "! grep -q cfgbuilder '$tmp/own.txt'"

# --- errors: exit 2 at file:line:col, for every verb that reads the matrix ---
cp "$site/kiln.toml" "$tmp/good.toml"
printf 'state_dir = "state"\n[runners.x]\nbackend = "kaniko"\n[registry]\nurl = "r:5000"\npassword = "hunter2"\n' >"$site/kiln.toml"
"$kiln" plan ../m.toml >/dev/null 2>"$tmp/bad.err"
check "bad config: plan exit 2" test $? -eq 2
check "bad config: backend at 3:11" grep -qF "$site/kiln.toml:3:11: error: backend must be \"engine\" or \"buildx\"" "$tmp/bad.err"
check "bad config: password refused at 6:12" grep -qF "$site/kiln.toml:6:12: error: [registry] password: kiln never reads credentials" "$tmp/bad.err"
check "bad config: the secret is never echoed" bash -c "! grep -q hunter2 '$tmp/bad.err'"
cp "$tmp/good.toml" "$site/kiln.toml"

{ cat "$site/sub/m.toml"; printf '[registry]\nrepository = "ml/x"\n'; } >"$tmp/norl.toml"
"$kiln" --no-config plan "$tmp/norl.toml" >/dev/null 2>"$tmp/norl.err"
check "[registry] without url and no config: exit 2" test $? -eq 2
check "[registry] without url: at its table" grep -qF "$tmp/norl.toml:16:1: error: [registry] names no url" "$tmp/norl.err"
"$kiln" plan "$tmp/norl.toml" --format json >"$tmp/norl.json"
check "[registry] repository + the config's url" json_assert "$tmp/norl.json" "'127.0.0.1:5999/ml/x:cuda12.4-debian13-runtime' in json.dumps(j)"

# --- state_dir: the config's, unless --state-dir is given ---------------------
# The config's builder has no engine behind it: build fails (exit 2) after
# taking the state directory's lock, which makes the directory.
KILN_ENGINE_CONNECT_TIMEOUT=2 "$kiln" build ../m.toml --builder cfgbuilder >"$tmp/build.out" 2>&1
check "build on the config's dead builder: exit 2" test $? -eq 2
check "build names the config's engine" grep -qF "$tmp/no-engine.sock" "$tmp/build.out"
check "the config's state_dir is used" test -d "$site/state"
check "not ./.kiln" test ! -e "$site/sub/deeper/.kiln"
KILN_ENGINE_CONNECT_TIMEOUT=2 "$kiln" build ../m.toml --builder cfgbuilder --state-dir "$tmp/flag-state" >/dev/null 2>&1
check "--state-dir wins over the config" test -d "$tmp/flag-state"

echo "test_config_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
