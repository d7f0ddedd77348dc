#!/usr/bin/env bash
# Builds the tests with a sanitizer and runs them:
#   scripts/sanitize.sh address   ASan+UBSan into ./build-asan
#   scripts/sanitize.sh thread    TSan into ./build-tsan
# Runs the ctest labels in RBDCSI_SANITIZE_LABELS (default: unit|integration|privileged for
# address, unit|integration for thread). Any sanitizer report fails the test that made it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: scripts/sanitize.sh address|thread}
case "$mode" in
  address) dir=build-asan; labels=${RBDCSI_SANITIZE_LABELS:-unit|integration|privileged} ;;
  thread) dir=build-tsan; labels=${RBDCSI_SANITIZE_LABELS:-unit|integration} ;;
  *) echo "sanitize: unknown mode '$mode': use address or thread" >&2; exit 2 ;;
esac
scripts/install-deps.sh
# -O1 -g1: fast enough to build on a CI machine, still with file:line in every report.
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DRBDCSI_SANITIZE="$mode" >/dev/null
# Everything ctest runs (the tests, the binary the integration tests start, their helpers);
# not the benchmark.
targets=$(cd "$dir" && ctest -N -L "$labels" | sed -n 's/^ *Test *#[0-9]*: //p')
cmake --build "$dir" -j"$(nproc)" --target rbdcsi fake_rbd ns_thread_helper $targets
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
cd "$dir"
ctest --output-on-failure --timeout 600 -L "$labels"
