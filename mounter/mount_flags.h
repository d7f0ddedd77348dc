// The mount-flag policy: which options a request may ask for when a volume is mounted.
#ifndef RBDCSI_MOUNTER_MOUNT_FLAGS_H_
#define RBDCSI_MOUNTER_MOUNT_FLAGS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rbdcsi {

// Checks the mount flags of a request (one option each, as CSI passes them) for a volume of
// filesystem `fs_type` and returns the options to mount with: the request's, in order, with
// "ro" appended for a read-only volume that does not ask for it already.
//
// Allowed: the VFS options that only restrict or tune the mount (noatime, relatime, lazytime,
// nodiratime, noexec, nosuid, nodev, sync, dirsync, ...; "rw" only for a writable volume) and,
// per filesystem, the ext4 or xfs options that tune it (discard, data=, commit=, errors=
// remount-ro|continue, quota options, logbsize=, ...) with values of the documented form.
// Refused, with INVALID_ARGUMENT naming the flag (control bytes shown escaped):
//   - anything not on the allowlist of `fs_type`, and any fs_type other than ext4 and xfs;
//   - userspace-only options: X-* and x-*, user, users, owner, group, defaults, auto, noauto,
//     nofail, _netdev, helper=, comment=;
//   - propagation flags (shared, slave, private, unbindable and their r*/make-* forms) and
//     bind, rbind, move, remount;
//   - loop, offset=, sizelimit=, encryption=: they would stack a device on the volume;
//   - errors=panic; "rw" for a read-only volume;
//   - an empty flag, a comma, whitespace, control bytes or NUL, non-ASCII, more than 256 bytes.
// Pure; thread-safe.
absl::StatusOr<std::vector<std::string>> ApplyMountFlagPolicy(std::string_view fs_type,
                                                              const std::vector<std::string>& flags,
                                                              bool read_only);

}  // namespace rbdcsi

#endif  // RBDCSI_MOUNTER_MOUNT_FLAGS_H_
