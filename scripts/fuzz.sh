#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan+UBSan) into ./build-fuzz and runs
# each for RBDCSI_FUZZ_SECONDS (default 20) seconds, starting from its seed corpus in
# tests/testdata and its saved crashes in tests/fuzz/regressions. Prints the executions per
# target; exits non-zero when any target finds a crash (the input is kept under
# build-fuzz/crashes: add it to tests/fuzz/regressions/TARGET/ once fixed). The targets run
# side by side, one per CPU. One argument runs one phase: --build-only (scripts/test.sh builds
# beside the other tests) or --test-only (after such a build).
set -euo pipefail
cd "$(dirname "$0")/.."
phase=${1:-all}
case "$phase" in
  all | --build-only | --test-only) ;;
  *) echo "usage: scripts/fuzz.sh [--build-only|--test-only]" >&2; exit 2 ;;
esac
seconds=${RBDCSI_FUZZ_SECONDS:-20}
# A fixed seed by default, so that CI explores the same inputs on every run (set it to 0 for a
# random one when hunting).
seed=${RBDCSI_FUZZ_SEED:-1}

declare -A seeds=(
  [fuzz_mountinfo]=tests/testdata/mountinfo
  [fuzz_cgroup]=tests/testdata/cgroup
  [fuzz_rbd_device_list]=tests/testdata/rbd
  [fuzz_volume_id]=tests/testdata/volume_ids
  [fuzz_volume_record]=tests/testdata/records
  [fuzz_mount_flags]=tests/testdata/mount_flags
  [fuzz_text]=tests/testdata/mountinfo
)
targets=(fuzz_mountinfo fuzz_cgroup fuzz_rbd_device_list fuzz_volume_id fuzz_volume_record
         fuzz_mount_flags fuzz_text)

if [[ $phase != --test-only ]]; then
  scripts/install-deps.sh
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRBDCSI_FUZZ=ON \
    -DBUILD_TESTING=OFF >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"
fi
if [[ $phase == --build-only ]]; then exit 0; fi

# Runs target $1 from its corpora; its verdict goes to build-fuzz/$1.verdict.
fuzz_one() {
  local t=$1 work="$root/$1" log
  mkdir "$work"  # new inputs go here; the seeds stay as they are
  local corpora=("$work" "${seeds[$t]}")
  [[ -d tests/fuzz/regressions/$t ]] && corpora+=("tests/fuzz/regressions/$t")
  log="build-fuzz/$t.log"
  if build-fuzz/tests/fuzz/"$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -seed="$seed" -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$t-" \
      "${corpora[@]}" >"$log" 2>&1; then
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: $t: ${runs:-?} executions in ${seconds} s, no crash" >"build-fuzz/$t.verdict"
  else
    { echo "fuzz: $t: FAILED; input saved under build-fuzz/crashes/, last lines of $log:"
      tail -n 30 "$log"; } >"build-fuzz/$t.verdict"
  fi
  rm -rf "$work"
}

mkdir -p build-fuzz/crashes
root=$(mktemp -d /tmp/rbdcsi-fuzz-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$root"' EXIT
running=0
for t in "${targets[@]}"; do
  rm -f "build-fuzz/$t.verdict"
  if ((running >= $(nproc))); then wait -n || true; running=$((running - 1)); fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait
failed=0
for t in "${targets[@]}"; do
  if [[ ! -f build-fuzz/$t.verdict ]]; then
    echo "fuzz: $t: no verdict (the run was interrupted)"; failed=1; continue
  fi
  cat "build-fuzz/$t.verdict"
  grep -q "no crash$" "build-fuzz/$t.verdict" || failed=1
done
exit "$failed"
