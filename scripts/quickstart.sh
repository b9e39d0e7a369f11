#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, offline (no Docker Hub, nvcr or
# PyPI): install what kiln needs, build kiln, start a Docker engine if none
# answers, make the local Debian bases, then plan, render and build every
# combination of matrices/offline.toml (real CUDA 11.8 and 12.4 images,
# runtime and devel; the devel images compile a CUDA program with their own
# nvcc while they build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target kiln
scripts/start-engine.sh >/dev/null
scripts/make-bases.sh
kiln=build/src/cli/kiln
"$kiln" plan matrices/offline.toml
"$kiln" generate matrices/offline.toml -o generated/offline
"$kiln" build matrices/offline.toml
"$kiln" status matrices/offline.toml
