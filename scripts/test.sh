#!/usr/bin/env bash
# Builds rbdcsi and runs every test: unit, integration and privileged (root, real kernel).
# Without arguments (as CI runs it) it also runs the fuzz targets (scripts/fuzz.sh) and the
# tests under ASan+UBSan and under TSan (scripts/sanitize.sh), even when a test failed; the exit
# code says whether all passed. The sanitizer and fuzz builds run beside ctest at the lowest CPU
# priority: the vm and kube tests mostly wait (for a guest, pods, kubelet's retries) and leave
# a core idle. Extra args go to ctest and leave all of that out, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
all=$((($# == 0)))
rc=0
if ((all)); then
  san_log=build/sanitizer-builds.log
  setsid nice -n 19 bash -c 'scripts/sanitize.sh address --build-only &&
                             scripts/sanitize.sh thread --build-only &&
                             scripts/fuzz.sh --build-only' >"$san_log" 2>&1 &
  san_builds=$!
  trap 'kill -- -"$san_builds" 2>/dev/null || true' EXIT
fi
(cd build && ctest --output-on-failure --timeout 600 "$@") || rc=1
if ((all)); then
  start=$SECONDS
  if ! wait "$san_builds"; then
    echo "test.sh: the sanitizer and fuzz builds failed; the end of $san_log:"
    tail -n 40 "$san_log"
    rc=1
  fi
  echo "test.sh: the sanitizer and fuzz builds ended $((SECONDS - start)) s after ctest"
  for step in "scripts/fuzz.sh --test-only" "scripts/sanitize.sh address --test-only" \
              "scripts/sanitize.sh thread --test-only"; do
    start=$SECONDS
    $step || rc=1
    echo "test.sh: $step took $((SECONDS - start)) s"
  done
fi
exit "$rc"
