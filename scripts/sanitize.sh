#!/usr/bin/env bash
# Builds the tests with a sanitizer (gcc, -O1 -g1, warnings not errors: gcc 12 warns falsely in
# libstdc++ under sanitizers) and runs them; any report fails its test.
#   scripts/sanitize.sh address   ASan+UBSan into ./build-asan: the unit, integration and
#                                 privileged tests (the integration tests start an ASan rbdcsi)
#   scripts/sanitize.sh thread    TSan into ./build-tsan: the unit tests, without the ones that
#                                 run gRPC servers or channels (below)
# A second argument runs one phase: --build-only (scripts/test.sh builds beside the other tests)
# or --test-only (after such a build).
# Never built or run here: the ceph, vm and kube labels (a live cluster, a VM, a kubelet: minutes
# each, and librados/librbd/kubelet are not instrumented), the benchmarks and the Python tests.
#
# Why TSan leaves gRPC out: Debian's libgrpc++ and libabsl are not built with TSan, so the
# happens-before edges of gRPC's completion queues and absl::Mutex are invisible to it; a request
# handed from gRPC's thread to ours then reads as a race on every call (false reports), and
# suppressing them would also hide real races in our handlers. So TSan runs the unit tests,
# whose threads synchronise through our code and libstdc++ (both instrumented): per-volume and
# per-image locks, the call tracker, child processes, holder waits, the record store. Excluded:
# serve_integration_test, registration_integration_test (the rbdcsi binary is a gRPC server),
# and in driver_test the suites RegistrationTest and CriNamerTest (an in-process gRPC server
# and client). Those run under ASan+UBSan instead, as does manifests_test (Python, whose one
# program is `rbdcsi serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/sanitize.sh address|thread [--build-only|--test-only]"
mode=${1:?$usage}
phase=${2:-all}
case "$phase" in
  all | --build-only | --test-only) ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
case "$mode" in
  address) dir=build-asan; labels='unit|integration|privileged'; filter='*'; skip='^$' ;;
  thread) dir=build-tsan; labels='unit'; filter='-RegistrationTest.*:CriNamerTest.*'
          skip='manifests_test' ;;
  *) echo "sanitize: unknown mode '$mode': use address or thread" >&2; exit 2 ;;
esac
exclude='ceph|vm|kube'
build() {
  scripts/install-deps.sh
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DRBDCSI_SANITIZE="$mode" -DRBDCSI_WERROR=OFF -DCMAKE_UNITY_BUILD=ON >/dev/null
  # Only what ctest will run: its test programs (a ctest name is its target's name, but for the
  # script-driven tests, which have no target), the binary and helpers the integration tests start.
  mapfile -t tests < <(cd "$dir" && ctest -N -L "$labels" -LE "$exclude" -E "$skip" |
                       sed -n 's/^ *Test *#[0-9]*: //p')
  known=$(cmake --build "$dir" --target help)
  targets=()
  for t in "${tests[@]}"; do
    grep -qx "\.\.\. $t" <<<"$known" && targets+=("$t")
  done
  [[ $mode == address ]] && targets+=(rbdcsi fake_rbd)
  targets+=(ns_thread_helper)
  echo "sanitize: $mode: building ${targets[*]}"
  cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}" >/dev/null
}

if [[ $phase != --test-only ]]; then build; fi
if [[ $phase == --build-only ]]; then exit 0; fi
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
export GTEST_FILTER=$filter
cd "$dir"
ctest --output-on-failure --timeout 600 -L "$labels" -LE "$exclude" -E "$skip"
