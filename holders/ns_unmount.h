// Unmounting one stale mount inside another process's mount namespace (--reclaim-stale-mounts).
//
// Nothing from the holder's filesystem runs: no nsenter, no `umount` binary of the container. A
// forked child of the plugin joins the namespace through a descriptor whose inode was checked,
// makes sure the topmost mount at the path is the one the scan found, and calls umount2 itself.
#ifndef RBDCSI_HOLDERS_NS_UNMOUNT_H_
#define RBDCSI_HOLDERS_NS_UNMOUNT_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace rbdcsi {

// Implementations are thread-safe.
class NamespaceUnmounter {
 public:
  virtual ~NamespaceUnmounter() = default;

  // Unmounts (never lazily) the mount `mount_id` at `mount_point` inside the mount namespace
  // `ns_inode` of task `tid` of process `pid` (tid == 0: the process itself).
  //
  // `mount_id` is the mount id of /proc/PID/mountinfo's first field, which is also what
  // statmount() calls mnt_id_old and statx(STATX_MNT_ID) returns (Holder::mount_id); not the
  // 64-bit unique id. `mount_point` is absolute, as that namespace sees it from its root.
  //
  // Returns NOT_FOUND when the process (or thread) is gone or the path no longer exists there;
  // FAILED_PRECONDITION when that task's mount namespace is no longer `ns_inode` (the pid was
  // reused, or the task moved) or the topmost mount at the path is not `mount_id` (it was
  // unmounted meanwhile, or another mount was stacked on it); an IsBusy() status when the
  // kernel refuses the unmount because the mount is in use; INVALID_ARGUMENT for a relative path
  // or "/"; DEADLINE_EXCEEDED when the unmount did not finish within the implementation's bound;
  // other codes as ErrnoToStatus() maps the failing call's errno.
  virtual absl::Status Unmount(pid_t pid, pid_t tid, uint64_t ns_inode, int mount_id,
                               const std::string& mount_point) = 0;
};

// setns(2) + statx(2) + umount2(2) in a forked child, which dies with the plugin and is killed
// when it has not finished within `timeout` (Unmount then returns DEADLINE_EXCEEDED; an unmount
// that syncs a large filesystem may take seconds). Needs CAP_SYS_ADMIN and CAP_SYS_CHROOT, and
// Linux >= 5.8 (statx's mount id).
std::unique_ptr<NamespaceUnmounter> NewRealNamespaceUnmounter(
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace rbdcsi

#endif  // RBDCSI_HOLDERS_NS_UNMOUNT_H_
