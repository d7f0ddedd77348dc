#!/usr/bin/env bash
# Builds rbdcsi and runs every test: unit, integration and privileged (root, real kernel).
# Without arguments (as CI runs it) it then also runs the fuzz targets (scripts/fuzz.sh), even
# when a test failed; the exit code says whether all passed.
# Extra args go to ctest and leave those out, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
rc=0
(cd build && ctest --output-on-failure --timeout 600 "$@") || rc=1
if (($# == 0)); then
  for step in "scripts/fuzz.sh"; do
    start=$SECONDS
    $step || rc=1
    echo "test.sh: $step took $((SECONDS - start)) s"
  done
fi
exit "$rc"
