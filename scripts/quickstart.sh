#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, offline: install what kiln
# needs, build it, and run it on matrices/offline.toml (plan, then render
# Dockerfiles and a bake file into generated/offline).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target kiln
build/src/cli/kiln plan matrices/offline.toml
build/src/cli/kiln generate matrices/offline.toml -o generated/offline
echo
echo "Dockerfiles: generated/offline/*/Dockerfile; build them all with"
echo "  (cd generated/offline && docker buildx bake -f docker-bake.json)"
