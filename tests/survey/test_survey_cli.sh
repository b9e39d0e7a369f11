#!/usr/bin/env bash
# `kiln catalog check` end to end through the real binary: fixture documents
# (tests/survey/data, see its README), wheels and an installed torch built
# here with nvcc fat binaries, --write on a copy of the catalog, and --online
# against a local HTTP server. Exit codes: 0 no difference, 1 differences,
# 2 bad input.
# Usage: test_survey_cli.sh PATH/TO/kiln [NVCC]
set -uo pipefail
kiln=$1 nvcc=${2:-/usr/local/cuda/bin/nvcc}
data=tests/survey/data
tmp=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
json_assert() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); r={x['fact']:x for x in j['rows']}; sys.exit(0 if ($2) else 1)" "$1"; }

# A copy of recipes/ with the test catalog (data/catalog) in place of
# pytorch.toml and cuda.toml: the facts the fixtures describe.
fresh_catalog() {  # fresh_catalog DIR
  rm -rf "$1"; mkdir -p "$1"
  cp -r recipes "$1/"
  cp "$data/catalog/pytorch.toml" "$data/catalog/cuda.toml" "$1/recipes/catalog/"
}
fresh_catalog "$tmp/kiln"
K() { "$kiln" --data-dir "$tmp/kiln" catalog check "$@"; }

# --- bad input: exit 2 and the input named -----------------------------------
K >/dev/null 2>"$tmp/err"
check "nothing to check exit 2" test $? -eq 2
check "nothing to check said" grep -q "nothing to check" "$tmp/err"
K --wheel "$tmp/missing.whl" >/dev/null 2>"$tmp/err"
check "missing wheel exit 2" test $? -eq 2
check "missing wheel named" grep -q "missing.whl: error: no such file" "$tmp/err"
printf 'not a zip' >"$tmp/bad.whl"
K --wheel "$tmp/bad.whl" >/dev/null 2>"$tmp/err"
check "broken wheel exit 2" test $? -eq 2
check "broken wheel named" grep -q "bad.whl" "$tmp/err"
K --index "$data/redistrib_13.0.2.json" >/dev/null 2>"$tmp/err"
check "a redistrib is no index page: exit 2" test $? -eq 2
K --redistrib "$data/cu130_torch.json" >/dev/null 2>"$tmp/err"
check "an index page is no redistrib: exit 2" test $? -eq 2
K --dockerfile "$data/cu129_torch.html" >/dev/null 2>"$tmp/err"
check "an index page is no Dockerfile: exit 2" test $? -eq 2
K --site-packages "$tmp" >/dev/null 2>"$tmp/err"
check "no torch installed: exit 2" test $? -eq 2

# --- the document fixtures agree with the test catalog ------------------------
K --index "$data/cu130_torch.json" --format json >"$tmp/i.json"
check "PEP 691 cu130 page: exit 0" test $? -eq 0
check "PEP 691: schema, releases compared" json_assert "$tmp/i.json" \
  "j['schema']=='kiln.catalog-check/v1' and j['differences']==0 and r['pytorch 2.11.0 CUDA 13.0: published']['artifact'].startswith('published') and r['pytorch 2.11.0 CUDA 13.0: python']['artifact']=='3.10 3.11 3.12 3.13 3.14'"
K --index "$data/cu129_torch.html" --all >"$tmp/i.txt"
check "HTML cu129 page: exit 0" test $? -eq 0
check "HTML: 2.9.1 cu129 compared" grep -q "pytorch 2.9.1 CUDA 12.9: published" "$tmp/i.txt"
K --redistrib "$data/redistrib_13.0.2.json" >"$tmp/r.txt"
check "redistrib 13.0.2: exit 0" test $? -eq 0
check "redistrib: component versions reported" grep -q "CUDA 13.0.2: libcublas: 13.1.0.3" "$tmp/r.txt"
K --dockerfile "$data/Dockerfile.13.0.2-base-ubuntu24.04" --format json >"$tmp/d.json"
check "Dockerfile 13.0.2: exit 0" test $? -eq 0
check "Dockerfile: the x86_64 stage's NVIDIA_REQUIRE_CUDA" json_assert "$tmp/d.json" \
  "'brand=cloudgaming,driver>=575,driver<576' in r['CUDA 13.0: NVIDIA_REQUIRE_CUDA']['artifact'] and not r['CUDA 13.0: NVIDIA_REQUIRE_CUDA']['differs']"

# --- a document that differs, then --write ------------------------------------
sed -i 's/^require_cuda = .*/require_cuda = "cuda>=13.0 brand=tesla,driver>=535,driver<536"/' "$tmp/kiln/recipes/catalog/cuda.toml"
K --dockerfile "$data/Dockerfile.13.0.2-base-ubuntu24.04" >"$tmp/d.txt"
check "Dockerfile vs an older string: exit 1" test $? -eq 1
check "Dockerfile: the brands that differ named" grep -q "brands only in the Dockerfile: cloudgaming grid nvidia nvidiartx quadro quadrortx unknown vapps vcs vpc vws" "$tmp/d.txt"
check "Dockerfile: the branches that differ named" grep -q "branches only in the Dockerfile: 550 565 570 575" "$tmp/d.txt"
K --dockerfile "$data/Dockerfile.13.0.2-base-ubuntu24.04" --write >"$tmp/d.txt"
check "Dockerfile --write: exit 0" test $? -eq 0
K --dockerfile "$data/Dockerfile.13.0.2-base-ubuntu24.04" >/dev/null
check "Dockerfile after --write: no difference" test $? -eq 0
check "cuda.toml: require_cuda replaced in place, its comment above it" \
  python3 -c "import sys; t=open(sys.argv[1]).read().split('\n'); i=[n for n,l in enumerate(t) if l.startswith('require_cuda')]; sys.exit(0 if len(i)==1 and t[i[0]-1]=='# NVIDIA\'s string, as the 13.0.2 base Dockerfile sets it.' and 'cloudgaming,driver>=575' in t[i[0]] else 1)" "$tmp/kiln/recipes/catalog/cuda.toml"
check "cuda.toml: comments kept" grep -q "^full = \"13.0.2\"   # the update the fixtures describe" "$tmp/kiln/recipes/catalog/cuda.toml"
check "sources.toml: the Dockerfile recorded" grep -q '^"dockerfile:Dockerfile.13.0.2-base-ubuntu24.04 sha256:' "$tmp/kiln/recipes/catalog/sources.toml"

# --- --online against a local server (no network here) -----------------------
mkdir -p "$tmp/www/simple/torch"
cp "$data/pypi_torch.json" "$tmp/www/"
cp "$data/cu129_torch.html" "$tmp/www/simple/torch/index.html"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$tmp/www" >/dev/null 2>&1 &
server_pid=$!
python3 -c "
import sys, time, urllib.request
for _ in range(100):
    try: urllib.request.urlopen('http://127.0.0.1:$port/pypi_torch.json', timeout=1); sys.exit(0)
    except Exception: time.sleep(0.1)
sys.exit(1)"
check "local server up" test $? -eq 0
K --online --pypi-url "http://127.0.0.1:$port/pypi_torch.json" --format json >"$tmp/o.json"
check "--online: newer releases exit 1" test $? -eq 1
check "--online: 2.12.0 to 2.15.0 listed, no pre-release" python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))
newer = [r['artifact'].split()[0] for r in j['rows'] if r['fact'] == 'pytorch: release newer than the catalog']
sys.exit(0 if newer == ['2.12.0', '2.13.0', '2.14.0', '2.15.0'] else 1)" "$tmp/o.json"
K --index "http://127.0.0.1:$port/simple/torch" >/dev/null
check "--index URL through a redirect: exit 0" test $? -eq 0
K --index "http://127.0.0.1:$port/simple/nothing/" >/dev/null 2>"$tmp/err"
check "--index URL 404: exit 2" test $? -eq 2
check "--index URL 404 said" grep -q "HTTP 404" "$tmp/err"
kill "$server_pid" 2>/dev/null
wait "$server_pid" 2>/dev/null
server_pid=

# --- wheels and an installed torch with nvcc-built fat binaries ---------------
if [ ! -x "$nvcc" ]; then
  echo "no nvcc: wheel cases skipped"
else
  kernel=tests/audit/data/kernel.cu
  gencode() { local a; for a in "$@"; do printf -- '-gencode arch=compute_%s,code=sm_%s ' "$a" "$a"; done; }
  # shellcheck disable=SC2046
  "$nvcc" -shared -Xcompiler -fPIC $(gencode 75 80 86 90 100 120) -o "$tmp/lib_match.so" "$kernel"
  check "nvcc: 2.11 cu130 arch list" test $? -eq 0
  "$nvcc" -shared -Xcompiler -fPIC -gencode arch=compute_75,code=sm_75 "-gencode=arch=compute_90,code=[sm_90,compute_90]" \
    -o "$tmp/lib_diff.so" "$kernel"
  check "nvcc: sm_75 sm_90 + PTX 9.0" test $? -eq 0
  # Like libtorch_cuda.so: the arch list in every fat binary, a few kernels
  # for single architectures on top (there: sm_89, sm_90a, sm_100a...).
  objs=()
  for n in a b c; do
    printf '__global__ void k_%s(float* x) { x[threadIdx.x] += 1.0f; }\n' "$n" >"$tmp/$n.cu"
    # shellcheck disable=SC2046
    "$nvcc" -c -Xcompiler -fPIC $(gencode 75 90) -o "$tmp/$n.o" "$tmp/$n.cu" && objs+=("$tmp/$n.o")
  done
  printf '__global__ void only_some(float* x) { x[0] = 0.0f; }\n' >"$tmp/extra.cu"
  "$nvcc" -c -Xcompiler -fPIC -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90a,code=sm_90a \
    -o "$tmp/extra.o" "$tmp/extra.cu" && objs+=("$tmp/extra.o")
  "$nvcc" -shared -o "$tmp/lib_extra.so" "${objs[@]}"
  check "nvcc: 3 objects for the list, 1 with extra kernels" test $? -eq 0
  mkdir -p "$tmp/wheels"
  toolkit='cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.2'
  match=$(python3 tests/survey/make_wheel.py wheel "$tmp/wheels" 2.11.0+cu130 13.0 "$tmp/lib_match.so" "$toolkit" \
    'nvidia-cudnn-cu13==9.19.0.56; platform_system == "Linux"' 'nvidia-nccl-cu13==2.28.9; platform_system == "Linux"')

  K --wheel "$match" --redistrib "$data/redistrib_13.0.2.json" --format json >"$tmp/w.json"
  check "matching wheel: exit 0" test $? -eq 0
  check "matching wheel: every fact compared" json_assert "$tmp/w.json" \
    "j['differences']==0 and r['pytorch 2.11.0 CUDA 13.0: arch_list']['artifact']=='7.5;8.0;8.6;9.0;10.0;12.0' and r['pytorch 2.11.0 CUDA 13.0: cudnn']['artifact']=='9.19.0.56' and r['pytorch 2.11.0 CUDA 13.0: cublas']['artifact']=='13.1.0.3' and r['pytorch 2.11.0 CUDA 13.0: cublas']['compared']"
  K --wheel "$match" --format json >"$tmp/w.json"
  check "matching wheel without the redistrib: cuBLAS not stated, exit 0" json_assert "$tmp/w.json" \
    "j['differences']==0 and not r['pytorch 2.11.0 CUDA 13.0: cublas']['compared'] and 'cuda-toolkit==13.0.2' in r['pytorch 2.11.0 CUDA 13.0: cublas']['source']"

  mkdir -p "$tmp/extra"
  extra=$(python3 tests/survey/make_wheel.py wheel "$tmp/extra" 2.11.0+cu130 13.0 "$tmp/lib_extra.so" 'nvidia-cudnn-cu13==9.19.0.56')
  K --wheel "$extra" --format json >"$tmp/x.json"
  check "kernels for a few archs are not the arch list" json_assert "$tmp/x.json" \
    "r['pytorch 2.11.0 CUDA 13.0: arch_list']['artifact']=='7.5;9.0' and r['pytorch 2.11.0 CUDA 13.0: code for a few kernels only, outside the arch list']['artifact']=='sm_89 sm_90a'"

  # An installed torch (a venv's lib/python3.12/site-packages) with its nvidia-* dist-infos.
  site=$(python3 tests/survey/make_wheel.py site "$tmp/venv" 2.11.0+cu130 13.0 "$tmp/lib_match.so" "$toolkit" \
    'nvidia-cudnn-cu13==9.19.0.56' 'nvidia-nccl-cu13==2.28.9' \
    --installed nvidia-cudnn-cu13==9.19.0.56 nvidia-nccl-cu13==2.28.9 nvidia-cublas==13.1.0.3 cuda-toolkit==13.0.2)
  K --site-packages "$tmp/venv" --format json >"$tmp/s.json"
  check "site-packages (venv root): exit 0" test $? -eq 0
  check "site-packages: installed versions reported, cuBLAS from the install" json_assert "$tmp/s.json" \
    "r['pytorch 2.11.0 CUDA 13.0: installed nvidia-cudnn-cu13']['artifact']=='9.19.0.56' and r['pytorch 2.11.0 CUDA 13.0: cublas']['artifact']=='13.1.0.3' and r['pytorch 2.11.0 CUDA 13.0: cublas']['compared']"
  K --site-packages "$site" >/dev/null
  check "site-packages (the directory itself): exit 0" test $? -eq 0

  # A wheel that differs in every bundled fact.
  diff=$(python3 tests/survey/make_wheel.py wheel "$tmp/wheels" 2.10.0+cu130 13.0 "$tmp/lib_diff.so" "$toolkit" \
    'nvidia-cudnn-cu13==9.13.0.50; platform_system == "Linux"' 'nvidia-nccl-cu13==2.27.7; platform_system == "Linux"')
  cp "$tmp/kiln/recipes/catalog/pytorch.toml" "$tmp/pytorch.before.toml"
  K --wheel "$diff" --redistrib "$data/redistrib_13.0.2.json" --format json >"$tmp/w.json"
  check "differing wheel: exit 1" test $? -eq 1
  check "differing wheel: each difference reported" json_assert "$tmp/w.json" \
    "[f for f in ('cudnn','nccl','cublas','arch_list') if r['pytorch 2.10.0 CUDA 13.0: '+f]['differs']]==['cudnn','nccl','cublas','arch_list'] and r['pytorch 2.10.0 CUDA 13.0: arch_list']['artifact']=='7.5;9.0+PTX' and j['differences']==4"
  K --wheel "$diff" --redistrib "$data/redistrib_13.0.2.json" >"$tmp/w.txt"
  check "differing wheel: table names the facts" grep -q "pytorch 2.10.0 CUDA 13.0: cudnn.*9.15.1.9 .*9.13.0.50" "$tmp/w.txt"
  check "differing wheel: arch difference explained" grep -q "SASS only in the catalog: 8.0 8.6 10.0 12.0" "$tmp/w.txt"

  K --wheel "$diff" --redistrib "$data/redistrib_13.0.2.json" --write >"$tmp/w.txt"
  check "differing wheel --write: exit 0" test $? -eq 0
  K --wheel "$diff" --redistrib "$data/redistrib_13.0.2.json" >/dev/null
  check "differing wheel after --write: no difference" test $? -eq 0
  p="$tmp/kiln/recipes/catalog/pytorch.toml"
  check "pytorch.toml: comments kept" grep -q "# The cu130 build: the differing wheel of test_survey_cli.sh claims other" "$p"
  check "pytorch.toml: header comment kept" grep -q "^# This comment, and the ones below, must survive" "$p"
  check "pytorch.toml: only the cu130 build of 2.10.0 changed" python3 - "$tmp/pytorch.before.toml" "$p" <<'EOF'
import difflib, sys
a, b = open(sys.argv[1]).read().splitlines(), open(sys.argv[2]).read().splitlines()
changed = [l for l in difflib.unified_diff(a, b, lineterm="", n=0) if l[:1] in "+-" and not l.startswith(("+++", "---"))]
want_minus = {'  cudnn = "9.15.1.9"', '  nccl = "2.28.9"', '  arch_list = "7.5;8.0;8.6;9.0;10.0;12.0+PTX"', '  source = ["S6", "S8", "S9"]'}
plus = [l[1:] for l in changed if l[0] == "+"]
minus = {l[1:] for l in changed if l[0] == "-"}
ok = minus == want_minus and '  cudnn = "9.13.0.50"' in plus and '  nccl = "2.27.7"' in plus and '  cublas = "13.1.0.3"' in plus \
    and '  arch_list = "7.5;9.0+PTX"' in plus and any(l.startswith('  source = ["S6", "S8", "S9", "wheel:torch-2.10.0+cu130') for l in plus)
if not ok: print("\n".join(changed))
sys.exit(0 if ok else 1)
EOF
  check "sources.toml: the wheel recorded" grep -q '^"wheel:torch-2.10.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl sha256:' \
    "$tmp/kiln/recipes/catalog/sources.toml"

  # A build the catalog lacks, in the middle of the file: --write adds it
  # after the release's last build, before the next release.
  mkdir -p "$tmp/cu126"
  b126=$(python3 tests/survey/make_wheel.py wheel "$tmp/cu126" 2.10.0+cu126 12.6 "$tmp/lib_diff.so" \
    'nvidia-cudnn-cu12==9.10.2.21' 'nvidia-nccl-cu12==2.27.5' 'nvidia-cublas-cu12==12.6.4.1')
  K --wheel "$b126" >"$tmp/b.txt"
  check "missing build: exit 1" test $? -eq 1
  check "missing build: said" grep -q "pytorch 2.10.0 CUDA 12.6: build .*(none; CUDA builds 12.9, 13.0)" "$tmp/b.txt"
  K --wheel "$b126" --write >/dev/null
  check "missing build --write: exit 0" test $? -eq 0
  K --wheel "$b126" --wheel "$match" --wheel "$diff" --redistrib "$data/redistrib_13.0.2.json" >/dev/null
  check "after adding a build, every wheel agrees" test $? -eq 0
  check "the new build sits in 2.10.0, before 2.11.0" python3 -c "
import sys, tomllib
d = tomllib.load(open(sys.argv[1], 'rb'))
r = {x['version']: [b['cuda'] for b in x['build']] for x in d['pytorch']}
sys.exit(0 if r['2.10.0'] == ['12.9', '13.0', '12.6'] and r['2.11.0'] == ['12.9', '13.0'] else 1)" "$p"

  # A release the catalog lacks: --write adds it.
  new=$(python3 tests/survey/make_wheel.py wheel "$tmp/wheels" 2.12.0+cu130 13.0 "$tmp/lib_diff.so" \
    'nvidia-cudnn-cu13==9.19.0.56' 'nvidia-nccl-cu13==2.28.9' 'nvidia-cublas==13.1.0.3')
  mkdir -p "$tmp/py313"
  new313=$(python3 tests/survey/make_wheel.py wheel "$tmp/py313" 2.12.0+cu130 13.0 "$tmp/lib_diff.so" \
    'nvidia-cudnn-cu13==9.19.0.56' 'nvidia-nccl-cu13==2.28.9' 'nvidia-cublas==13.1.0.3')
  mv "$new313" "${new313/cp312-cp312/cp313-cp313}"
  new313=${new313/cp312-cp312/cp313-cp313}
  K --wheel "$new" >"$tmp/n.txt"
  check "new release: exit 1" test $? -eq 1
  check "new release: said" grep -q "pytorch 2.12.0 CUDA 13.0: release" "$tmp/n.txt"
  K --wheel "$new" --wheel "$new313" --write >/dev/null
  check "new release from two wheels --write: exit 0" test $? -eq 0
  K --wheel "$new" --wheel "$new313" >/dev/null
  check "new release after --write: no difference" test $? -eq 0
  check "new release in pytorch.toml once, with both Pythons" python3 -c "
import sys, tomllib
d = tomllib.load(open(sys.argv[1], 'rb'))
r = [x for x in d['pytorch'] if x['version'] == '2.12.0']
sys.exit(0 if len(r) == 1 and r[0]['python'] == ['3.12', '3.13'] and len(r[0]['build']) == 1 else 1)" "$p"
fi

echo "survey cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
