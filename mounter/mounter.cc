#include "mounter/mounter.h"

#include <fcntl.h>
#include <libmount/libmount.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

// libmount parses option strings ("ro,noatime,discard") into flags and fs data the same way
// mount(8) does, and performs the remount a read-only bind needs.
absl::Status LibmountMount(const std::string& source, const std::string& target,
                           const std::string& fstype, const std::string& options) {
  libmnt_context* cxt = mnt_new_context();
  if (cxt == nullptr) return absl::ResourceExhaustedError("libmount: out of memory");
  mnt_context_disable_helpers(cxt, 1);  // no /sbin/mount.* helpers: the syscall, nothing else
  mnt_context_disable_mtab(cxt, 1);
  mnt_context_set_source(cxt, source.c_str());
  mnt_context_set_target(cxt, target.c_str());
  if (!fstype.empty()) mnt_context_set_fstype(cxt, fstype.c_str());
  if (!options.empty()) mnt_context_set_options(cxt, options.c_str());
  int rc = mnt_context_mount(cxt);
  int syscall_errno = mnt_context_syscall_called(cxt) ? mnt_context_get_syscall_errno(cxt) : 0;
  char buf[512] = {};
  if (rc != 0) mnt_context_get_excode(cxt, rc, buf, sizeof(buf));
  mnt_free_context(cxt);
  const std::string what = absl::StrCat("mounting ", source, " on ", target,
                                        fstype.empty() ? "" : absl::StrCat(" as ", fstype),
                                        options.empty() ? "" : absl::StrCat(" with ", options));
  if (rc == 0) return absl::OkStatus();
  if (syscall_errno != 0) return ErrnoToStatus(syscall_errno, what);
  if (rc < 0) return ErrnoToStatus(-rc, what);
  return absl::InternalError(absl::StrCat(what, ": ", buf[0] ? buf : "libmount failed"));
}

class RealMounter : public Mounter {
 public:
  absl::Status Mount(const std::string& source, const std::string& target,
                     const std::string& fstype, const std::string& options) override {
    return LibmountMount(source, target, fstype, options);
  }

  absl::Status BindMount(const std::string& source, const std::string& target,
                         bool read_only) override {
    return LibmountMount(source, target, "", read_only ? "bind,ro" : "bind");
  }

  absl::Status Unmount(const std::string& target) override {
    if (umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0) return absl::OkStatus();
    const int err = errno;
    if (err == EINVAL || err == ENOENT) {
      return absl::NotFoundError(absl::StrCat(target, " is not mounted"));
    }
    return ErrnoToStatus(err, absl::StrCat("unmounting ", target));
  }

  absl::StatusOr<std::vector<MountInfo>> List() override {
    return ReadMountInfo("/proc/self/mountinfo");
  }

  absl::StatusOr<bool> IsMountPoint(const std::string& path) override {
    struct statx stx {};
    if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) !=
        0) {
      if (errno == ENOENT) return false;
      return Mounter::IsMountPoint(path);  // e.g. EACCES on a parent: the table still tells
    }
    // STATX_ATTR_MOUNT_ROOT is reported since Linux 5.8; older kernels need the table.
    if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) == 0) return Mounter::IsMountPoint(path);
    return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  }
};

}  // namespace

std::unique_ptr<Mounter> NewRealMounter() { return std::make_unique<RealMounter>(); }

std::vector<MountInfo> MountsAt(const std::vector<MountInfo>& table, const std::string& path) {
  std::vector<MountInfo> out;
  for (const MountInfo& m : table) {
    if (m.mount_point == path) out.push_back(m);
  }
  return out;
}

}  // namespace rbdcsi
