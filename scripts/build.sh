#!/usr/bin/env bash
# Installs dependencies and builds rbdcsi (Release) into ./build. Extra args go to cmake --build.
# RBDCSI_UNITY=ON makes it a unity build (.ci/run sets it: a clean build then takes ~20% less
# CPU; an edit rebuilds its whole batch of sources, so developers' default is OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD="${RBDCSI_UNITY:-OFF}" >/dev/null
cmake --build build -j"$(nproc)" "$@"
