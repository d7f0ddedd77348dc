#!/bin/bash
# Runs inside the guest (tests/vm/vm-run): the kernel's rbd and nbd drivers load and show up
# where the mappers look for them, then each given test program runs on this kernel.
set -u
failures=0
check() {  # check DESCRIPTION COMMAND...: runs COMMAND, reports and counts a failure
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what" >&2; failures=$((failures + 1)); fi
}

echo "guest kernel $(uname -r)"
check "modprobe rbd" modprobe rbd
check "modprobe nbd" modprobe nbd nbds_max=4
check "rbd's sysfs bus (single-major interface)" test -w /sys/bus/rbd/add_single_major
check "rbd's devices directory" test -d /sys/bus/rbd/devices
check "/dev/nbd0 is a block device" test -b /dev/nbd0
check "rbd and nbd are listed as loaded" sh -c 'grep -q "^rbd " /proc/modules && grep -q "^nbd " /proc/modules'
check "no udev daemon runs (the mappers must pass noudev)" sh -c '! pidof systemd-udevd udevd >/dev/null'

for test_program in "$@"; do
  start=$(date +%s.%N)
  check "$(basename "$test_program")" "$test_program" --gtest_color=no
  echo "$(basename "$test_program"): $(awk -v s="$start" -v e="$(date +%s.%N)" \
    'BEGIN { printf "%.1f", e - s }') s in the guest"
done
if dmesg | grep -E 'I/O error|BUG:|WARNING:' >&2; then
  echo "FAILED: the guest kernel logged errors (above)" >&2
  failures=$((failures + 1))
fi
echo "$failures failure(s)"
[ "$failures" -eq 0 ]
