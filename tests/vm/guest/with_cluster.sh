#!/bin/bash
# Runs inside the guest (tests/vm/vm-run): loads rbd and nbd, starts a single-node cluster with
#   with_cluster.sh RBDCSI_TEST_CLUSTER PROGRAM [ARG]...
# runs PROGRAM with the cluster's variables (rbdcsi-test-cluster run tears it down afterwards),
# and fails when the guest kernel logged I/O errors meanwhile.
set -u
cluster=$1; shift
modprobe rbd && modprobe nbd nbds_max=8 || exit 1
start=$(date +%s.%N)
# No mgr: nothing here needs it, and under emulation it alone keeps a vCPU busy (measured: 45 s
# of CPU in its first 50 s, over 100 s by the time a few rbd calls were done).
"$cluster" run /tmp/rbdcsi-ceph-vm --no-mgr -- "$@"
rc=$?
echo "$(basename "$1"): exit $rc after $(awk -v s="$start" -v e="$(date +%s.%N)" \
  'BEGIN { printf "%.1f", e - s }') s in the guest (cluster start included)"
if dmesg | grep -E 'I/O error|BUG:|WARNING:' >&2; then
  echo "FAILED: the guest kernel logged errors (above)" >&2
  rc=1
fi
exit "$rc"
