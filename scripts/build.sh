#!/usr/bin/env bash
# Installs dependencies and builds rbdcsi (Release) into ./build. Extra args go to cmake --build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" "$@"
