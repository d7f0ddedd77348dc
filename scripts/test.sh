#!/usr/bin/env bash
# Builds rbdcsi and runs every test: unit, integration and privileged (root, real kernel).
# Extra args go to ctest, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure --timeout 600 "$@"
