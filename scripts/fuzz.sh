#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, ASan and UBSan, and runs each for
# SECONDS (default 30) on its seeds: the matrix -> plan -> render path, the
# fat-binary/ELF reader, the image-archive reader, and the template scanner.
# Any crash, sanitizer report or leak fails. A fixed seed (KILN_FUZZ_SEED, default 1) keeps CI
# reproducible; set another seed to explore. Usage: scripts/fuzz.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
dir=${2:-build-fuzz}
command -v clang++ >/dev/null || { echo "fuzz: clang++ is not installed"; exit 1; }
CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DKILN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" --target fuzz_matrix fuzz_fatbin fuzz_image fuzz_template
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus"/{matrix,fatbin,image,template}
cp matrices/*.toml tests/build/data/matrices/*.toml tests/matrix/fuzz-seeds/* "$corpus/matrix/" 2>/dev/null || true
cp templates/*.mustache templates/partials/*.mustache "$corpus/template/"
find "$dir/tests/audit" -name '*.o' -o -name '*.fatbin' 2>/dev/null | head -20 | xargs -r cp -t "$corpus/fatbin/"
cp tests/fuzz/seeds/image/* "$corpus/image/" 2>/dev/null || true  # hostile layers: sparse, gzip bomb
fail=0
for f in matrix fatbin image template; do
  bin=$(find "$dir/tests" -type f -name "fuzz_$f" -perm -u+x | head -1)
  echo "== fuzz_$f for ${secs}s"
  mkdir -p "$dir/crashes"
  if ! "$bin" "$corpus/$f" -artifact_prefix="$dir/crashes/$f-" -seed="${KILN_FUZZ_SEED:-1}" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$corpus/$f.log" 2>&1; then
    tail -40 "$corpus/$f.log"
    fail=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$corpus/$f.log" | tr '\n' ' '
  echo
done
echo "fuzz: $((4 - fail)) passed, $fail failed"
exit $fail
