#!/bin/bash
# Prints, verbatim, what the real `rbd` and `rbd-nbd` say (stdout, stderr, exit code) in the
# failure cases the krbd and nbd mappers classify. Not a test (nothing is asserted): run it by
# hand in the guest when a Ceph or kernel update may have changed the tools' words, e.g.
#   tests/vm/vm-run --cache build/vm-guest -- tests/vm/guest/with_cluster.sh \
#     build/tests/ceph/rbdcsi-test-cluster tests/vm/guest/real_tool_outputs.sh
# and compare with the captured outputs the mappers' unit tests use.
set -u
auth=(--id "$RBDCSI_CEPH_USER" -m "$RBDCSI_CEPH_MON" --keyfile "$RBDCSI_CEPH_KEYFILE")
work=$(mktemp -d /tmp/rbdcsi-tools.XXXXXX)

show() {  # show COMMAND...: runs it as the mappers do (argv, no shell) and prints what it said
  echo "\$ $*"
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  sed 's/^/  stdout: /' "$work/out"
  sed 's/^/  stderr: /' "$work/err"
  echo "  exit $rc"
}
admin() { rbd -c "$RBDCSI_CEPH_CONF" "$@" >/dev/null 2>&1; }

admin create rbd/tools1 --size 64
admin create rbd/tools2 --size 64

echo "== krbd"
show rbd device map rbd/missing "${auth[@]}" -o noudev
show rbd device unmap -o noudev /dev/rbd7
show rbd device map rbd/tools1 "${auth[@]}" -o noudev,exclusive
show rbd device map rbd/tools1 "${auth[@]}" -o noudev,exclusive
show rbd device list --format json
mkfs.ext4 -q /dev/rbd0 && mkdir -p "$work/mnt" && mount /dev/rbd0 "$work/mnt"
unshare --mount --propagation private sleep 600 &
holder=$!
sleep 1
umount "$work/mnt"
show rbd device unmap -o noudev /dev/rbd0
kill -9 "$holder"; wait "$holder" 2>/dev/null
show rbd device unmap -o noudev /dev/rbd0
show rbd device unmap -o noudev /dev/rbd0
show rbd device unmap -o noudev /dev/rbd1
echo "AQBVdW9mAAAAABAAbm90dGhlcmlnaHRrZXlhdGFsbD09" >"$work/bad.key"
# (rbd retries authentication for client_mount_timeout, 300 s by default)
show rbd device map rbd/tools1 --id "$RBDCSI_CEPH_USER" -m "$RBDCSI_CEPH_MON" \
  --keyfile "$work/bad.key" --client-mount-timeout 15 -o noudev
show rbd device list --format json

echo "== rbd-nbd"
show rbd device map -t nbd rbd/missing "${auth[@]}"
show rbd device map -t nbd rbd/tools2 "${auth[@]}"
show rbd device list -t nbd --format json
show rbd-nbd list-mapped --format json
daemon=$(cat /sys/block/nbd0/pid)
echo "daemon $daemon: $(tr '\0' ' ' <"/proc/$daemon/cmdline")"
kill -9 "$daemon"
sleep 2
echo "after kill -9: /sys/block/nbd0/pid='$(cat /sys/block/nbd0/pid 2>/dev/null)' size=$(cat /sys/block/nbd0/size)"
show rbd device list -t nbd --format json
show rbd device unmap -t nbd /dev/nbd0
show rbd device unmap -t nbd /dev/nbd1
echo "after unmap: /sys/block/nbd0/pid='$(cat /sys/block/nbd0/pid 2>/dev/null)'"

echo "== images"
show rbd status rbd/missing "${auth[@]}" --format json
show rbd status rbd/tools2 "${auth[@]}" --format json
admin rm --no-progress rbd/tools1
admin rm --no-progress rbd/tools2
rm -rf "$work"
