#include "holders/kernel_mounts.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

// Not in Debian 12's kernel headers: nsfs mount-namespace iteration (Linux 6.9) and
// listmount/statmount (6.8; foreign namespaces by id since 6.11).
struct MntNsInfo {
  uint32_t size;
  uint32_t nr_mounts;
  uint64_t mnt_ns_id;
};
constexpr unsigned kNsIo = 0xb7;
constexpr unsigned long kNsMntGetInfo = _IOR(kNsIo, 10, MntNsInfo);
constexpr unsigned long kNsMntGetNext = _IOR(kNsIo, 11, MntNsInfo);
constexpr unsigned long kNsMntGetPrev = _IOR(kNsIo, 12, MntNsInfo);

struct MntIdReq {
  uint32_t size;
  uint32_t spare;
  uint64_t mnt_id;
  uint64_t param;
  uint64_t mnt_ns_id;
};
constexpr long kSysStatmount = 457;
constexpr long kSysListmount = 458;
constexpr uint64_t kListmountRoot = ~0ULL;
constexpr uint64_t kStatmountSbBasic = 0x1;
constexpr uint64_t kStatmountMntBasic = 0x2;
constexpr uint64_t kStatmountPropagateFrom = 0x4;
constexpr uint64_t kStatmountMntRoot = 0x8;
constexpr uint64_t kStatmountMntPoint = 0x10;
constexpr uint64_t kStatmountFsType = 0x20;
constexpr uint64_t kMsUnbindable = 1 << 17;

// The fixed part of struct statmount; its strings start at byte 512 (the kernel keeps the
// struct that size by carving new fields out of its spare area).
struct Statmount {
  uint32_t size;
  uint32_t mnt_opts;
  uint64_t mask;
  uint32_t sb_dev_major;
  uint32_t sb_dev_minor;
  uint64_t sb_magic;
  uint32_t sb_flags;
  uint32_t fs_type;
  uint64_t mnt_id;
  uint64_t mnt_parent_id;
  uint32_t mnt_id_old;
  uint32_t mnt_parent_id_old;
  uint64_t mnt_attr;
  uint64_t mnt_propagation;
  uint64_t mnt_peer_group;
  uint64_t mnt_master;
  uint64_t propagate_from;
  uint32_t mnt_root;
  uint32_t mnt_point;
};
constexpr size_t kStatmountStrings = 512;

// The fields of a mount that ListNamespaceMounts fills, from the struct statmount in `buffer`.
MountInfo FromStatmount(const Statmount& sm, const char* buffer) {
  const char* strings = buffer + kStatmountStrings;
  MountInfo m;
  m.mount_id = static_cast<int>(sm.mnt_id_old);
  m.parent_id = static_cast<int>(sm.mnt_parent_id_old);
  m.major = sm.sb_dev_major;
  m.minor = sm.sb_dev_minor;
  if (sm.mask & kStatmountMntRoot) m.root = strings + sm.mnt_root;
  if (sm.mask & kStatmountMntPoint) m.mount_point = strings + sm.mnt_point;
  if (sm.mask & kStatmountFsType) m.fs_type = strings + sm.fs_type;
  if (sm.mnt_peer_group != 0) {
    m.optional_fields.push_back(absl::StrCat("shared:", sm.mnt_peer_group));
  }
  if (sm.mnt_master != 0) m.optional_fields.push_back(absl::StrCat("master:", sm.mnt_master));
  if ((sm.mask & kStatmountPropagateFrom) && sm.propagate_from != 0 &&
      sm.propagate_from != sm.mnt_master) {
    m.optional_fields.push_back(absl::StrCat("propagate_from:", sm.propagate_from));
  }
  if (sm.mnt_propagation & kMsUnbindable) m.optional_fields.push_back("unbindable");
  return m;
}

}  // namespace

// Walks the kernel's list of mount namespaces: back from ours to the first, then forward.
absl::StatusOr<std::vector<KernelMountNamespace>> ListKernelMountNamespaces() {
  UniqueFd self(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (!self.valid()) return ErrnoToStatus(errno, "cannot open /proc/self/ns/mnt");
  MntNsInfo info{sizeof(MntNsInfo), 0, 0};
  if (::ioctl(self.get(), kNsMntGetInfo, &info) != 0) {
    const int err = errno;
    if (err == ENOTTY || err == EINVAL || err == EOPNOTSUPP) {
      return absl::UnimplementedError(
          "the kernel has no mount namespace iteration (NS_MNT_GET_INFO needs Linux 6.9)");
    }
    return ErrnoToStatus(err, "NS_MNT_GET_INFO on /proc/self/ns/mnt");
  }
  UniqueFd first = std::move(self);
  while (true) {
    MntNsInfo prev{sizeof(MntNsInfo), 0, 0};
    const int fd = ::ioctl(first.get(), kNsMntGetPrev, &prev);
    if (fd < 0) break;  // ENOENT at the first namespace; anything else: start from here.
    first.reset(fd);
  }
  std::vector<KernelMountNamespace> namespaces;
  UniqueFd current = std::move(first);
  while (current.valid()) {
    MntNsInfo cur{sizeof(MntNsInfo), 0, 0};
    struct stat st;
    if (::ioctl(current.get(), kNsMntGetInfo, &cur) == 0 && ::fstat(current.get(), &st) == 0) {
      namespaces.push_back({static_cast<uint64_t>(st.st_ino), cur.mnt_ns_id, cur.nr_mounts});
    }
    MntNsInfo next{sizeof(MntNsInfo), 0, 0};
    const int fd = ::ioctl(current.get(), kNsMntGetNext, &next);
    current.reset(fd < 0 ? -1 : fd);
  }
  return namespaces;
}

absl::StatusOr<size_t> KernelMountLister::ListIds(const KernelMountNamespace& ns) {
  ids_.resize(std::max<size_t>(ns.mounts + 64, 256));
  size_t count = 0;
  MntIdReq req{sizeof(MntIdReq), 0, kListmountRoot, 0, ns.id};
  while (true) {
    const long n = ::syscall(kSysListmount, &req, ids_.data() + count, ids_.size() - count, 0);
    if (n < 0) {
      if (errno == ENOSYS) return absl::UnimplementedError("the kernel has no listmount()");
      if (errno == E2BIG || errno == EINVAL) {
        return absl::UnimplementedError(
            "listmount() cannot list other mount namespaces (needs Linux 6.11)");
      }
      return ErrnoToStatus(errno, absl::StrCat("listmount in mount namespace ", ns.inode));
    }
    count += static_cast<size_t>(n);
    if (count < ids_.size()) return count;
    req.param = ids_[count - 1];
    ids_.resize(ids_.size() * 2);
  }
}

bool KernelMountLister::Describe(uint64_t ns_id, uint64_t id,
                                 const std::vector<DeviceNumber>& devices, MountInfo* mount) {
  std::vector<char>& buffer = statmount_buffer_;
  // The device numbers alone first (the cheap part of statmount); details only for matches.
  MntIdReq req{sizeof(MntIdReq), 0, id, kStatmountSbBasic, ns_id};
  if (::syscall(kSysStatmount, &req, buffer.data(), buffer.size(), 0) != 0) return false;
  Statmount sm;
  std::memcpy(&sm, buffer.data(), sizeof(sm));
  const DeviceNumber dev{sm.sb_dev_major, sm.sb_dev_minor};
  if (std::find(devices.begin(), devices.end(), dev) == devices.end()) return false;
  req.param = kStatmountSbBasic | kStatmountMntBasic | kStatmountPropagateFrom | kStatmountMntRoot |
              kStatmountMntPoint | kStatmountFsType;
  long rc;
  while ((rc = ::syscall(kSysStatmount, &req, buffer.data(), buffer.size(), 0)) != 0 &&
         errno == EOVERFLOW) {
    buffer.resize(buffer.size() * 2);
  }
  if (rc != 0) return false;  // Unmounted meanwhile.
  std::memcpy(&sm, buffer.data(), sizeof(sm));
  *mount = FromStatmount(sm, buffer.data());
  return true;
}

absl::StatusOr<std::vector<MountInfo>> KernelMountLister::List(
    const KernelMountNamespace& ns, const std::vector<DeviceNumber>& devices) {
  ASSIGN_OR_RETURN(const size_t count, ListIds(ns));
  std::vector<MountInfo> mounts;
  for (size_t i = 0; i < count; ++i) {
    MountInfo m;
    if (Describe(ns.id, ids_[i], devices, &m)) mounts.push_back(std::move(m));
  }
  return mounts;
}

}  // namespace rbdcsi
