// Mounting and unmounting in this process's mount namespace.
#ifndef RBDCSI_MOUNTER_MOUNTER_H_
#define RBDCSI_MOUNTER_MOUNTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/paths.h"  // mount points are compared in CanonicalPath form
#include "base/status.h"
#include "mounter/mountinfo.h"

namespace rbdcsi {

// Implementations are thread-safe.
class Mounter {
 public:
  virtual ~Mounter() = default;

  // Mounts `source` (a block device) on the directory `target` as `fstype` with the
  // comma-separated `options` ("ro", "noatime", "discard", ...). INVALID_ARGUMENT for options
  // the kernel rejects; NOT_FOUND when source or target is missing.
  virtual absl::Status Mount(const std::string& source, const std::string& target,
                             const std::string& fstype, const std::string& options) = 0;

  // Bind-mounts `source` (a directory or a device node) on `target`, read-only if asked.
  virtual absl::Status BindMount(const std::string& source, const std::string& target,
                                 bool read_only) = 0;

  // Unmounts the topmost mount on `target`; never lazily. NOT_FOUND when `target` is not a
  // mount point or does not exist; a busy mount gives a status for which IsBusy() holds.
  virtual absl::Status Unmount(const std::string& target) = 0;

  // This process's mount table (/proc/self/mountinfo), freshly read.
  virtual absl::StatusOr<std::vector<MountInfo>> List() = 0;

  // Whether a mount is reachable at `path` (it is the root of a mount, seen through `path`
  // without following a final symlink); false when `path` does not exist. A mount hidden
  // under a mount on a parent directory is not reachable, so it does not count; List() shows
  // it. Reading the table costs time in proportion to every mount of the namespace, this
  // check does not. The default asks List().
  virtual absl::StatusOr<bool> IsMountPoint(const std::string& path) {
    ASSIGN_OR_RETURN(std::vector<MountInfo> table, List());
    for (const MountInfo& m : table) {
      if (m.mount_point == path) return true;
    }
    return false;
  }
};

std::unique_ptr<Mounter> NewRealMounter();

// The mounts whose mount point is exactly `path`, bottom first.
std::vector<MountInfo> MountsAt(const std::vector<MountInfo>& table, const std::string& path);

}  // namespace rbdcsi

#endif  // RBDCSI_MOUNTER_MOUNTER_H_
