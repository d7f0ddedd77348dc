// The reads of /proc and /sys that a holder scan needs, behind an interface so that scans can be
// unit-tested against a fake node.
//
// Every read is non-blocking with respect to filesystems: files are identified with
// statx(AT_STATX_DONT_SYNC) through /proc's magic links, never by walking a path that could sit on
// a dead NFS or FUSE mount. Methods that fill a caller's vector or string clear it first and reuse
// its capacity, so a scan over thousands of processes does not allocate per process.
#ifndef RBDCSI_HOLDERS_PROCFS_H_
#define RBDCSI_HOLDERS_PROCFS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/device_number.h"
#include "mounter/mountinfo.h"

namespace rbdcsi {

// A file a process uses: one of its descriptors, its working directory, root or executable.
struct ProcessFile {
  enum class Slot { kFd, kCwd, kRoot, kExe };
  Slot slot = Slot::kFd;
  int fd = -1;        // For kFd.
  DeviceNumber dev;   // The filesystem the file lives on (st_dev).
  DeviceNumber rdev;  // For device nodes: the device itself (st_rdev).
  bool block_device = false;
};

// A mount namespace the kernel enumerated (NS_MNT_GET_NEXT), with or without a process in it.
struct KernelMountNamespace {
  uint64_t inode = 0;  // As in /proc/PID/ns/mnt -> "mnt:[inode]".
  uint64_t id = 0;     // The kernel's 64-bit mount namespace id (for listmount).
  unsigned mounts = 0;
};

// A block device stacked on another one (an entry of /sys/dev/block/M:N/holders).
struct StackedDevice {
  std::string name;     // Kernel name, e.g. "dm-0".
  DeviceNumber number;  // Its own major:minor (zero if unreadable).
  std::string dm_name;  // Device-mapper name ("vg0-data", "luks-..."), empty if not dm.
  std::string dm_uuid;  // "LVM-...", "CRYPT-LUKS2-...", or empty.
};

// Implementations are thread-compatible: one scan at a time per instance. The real one keeps the
// last /proc/PID directory open so that consecutive calls for one pid share a path lookup.
class ProcFs {
 public:
  virtual ~ProcFs() = default;

  // This process's pid (its own fds are scanned minus the scanner's transient ones).
  virtual pid_t SelfPid() = 0;

  // Every process visible in /proc (thread-group ids). INTERNAL if /proc cannot be listed.
  virtual absl::Status ListProcesses(std::vector<pid_t>* pids) = 0;

  // Number of threads of `pid`. NOT_FOUND if the process is gone.
  virtual absl::StatusOr<int> ThreadCount(pid_t pid) = 0;

  // Thread ids of `pid` (including pid itself). NOT_FOUND if the process is gone.
  virtual absl::Status ListThreads(pid_t pid, std::vector<pid_t>* tids) = 0;

  // Inode of the mount namespace of process `pid` (tid == 0) or of its thread `tid`.
  // NOT_FOUND if gone.
  virtual absl::StatusOr<uint64_t> MountNamespaceOf(pid_t pid, pid_t tid) = 0;

  // The mount table of the namespace of `pid` (tid == 0) or of its thread `tid`, as text.
  // NOT_FOUND if gone.
  virtual absl::Status ReadMountInfo(pid_t pid, pid_t tid, std::string* text) = 0;

  // The fds, cwd, root and executable of `pid`. When `pid` is this process, the descriptor the
  // listing itself uses is left out. NOT_FOUND if gone; entries that vanish meanwhile are skipped.
  virtual absl::Status ListProcessFiles(pid_t pid, std::vector<ProcessFile>* files) = 0;

  // Where a file of `pid` points, as readlink(2) shows it (e.g. "/data (deleted)").
  virtual absl::StatusOr<std::string> FilePath(pid_t pid, const ProcessFile& file) = 0;

  // /proc/PID/<name> for small text files: "comm", "cmdline", "cgroup", "stat".
  virtual absl::StatusOr<std::string> ReadProcessFile(pid_t pid, std::string_view name) = 0;

  // Partitions of the block device (e.g. rbd3p1), from sysfs. Empty when it has none.
  virtual absl::StatusOr<std::vector<DeviceNumber>> ListPartitions(DeviceNumber device) = 0;

  // Block devices stacked directly on `device`. NOT_FOUND if sysfs does not know the device.
  virtual absl::StatusOr<std::vector<StackedDevice>> ListStackedDevices(DeviceNumber device) = 0;

  // The text of /proc/swaps.
  virtual absl::StatusOr<std::string> ReadSwaps() = 0;

  // st_dev / st_rdev of a path (for swap areas), without syncing remote attributes.
  virtual absl::StatusOr<ProcessFile> StatPath(const std::string& path) = 0;

  // The device number of nsfs, so that bind-mounted namespace files can be recognised in
  // mountinfo.
  virtual absl::StatusOr<DeviceNumber> NsfsDevice() = 0;

  // Every mount namespace of the system, through the nsfs iteration ioctls (Linux >= 6.9).
  // UNIMPLEMENTED when the kernel lacks them.
  virtual absl::StatusOr<std::vector<KernelMountNamespace>> ListMountNamespaces() = 0;

  // The mounts of a namespace whose device is one of `devices`, from the kernel
  // (listmount/statmount; Linux >= 6.11 for namespaces other than the caller's). Only mount_id,
  // parent_id, major, minor, root, mount_point, fs_type and the propagation tags are filled.
  // Cheaper than mountinfo: other mounts cost one small statmount each. UNIMPLEMENTED when the
  // kernel lacks it; NOT_FOUND if the namespace is gone.
  virtual absl::StatusOr<std::vector<MountInfo>> ListNamespaceMounts(
      const KernelMountNamespace& ns, const std::vector<DeviceNumber>& devices) = 0;

  // Fallback for kernels without the above: the mount table of the namespace whose nsfs file is
  // bind-mounted at `ns_file` (a path in this namespace, e.g. "/proc/PID/root/run/ns"), read by a
  // short-lived child that joins it. DEADLINE_EXCEEDED when that child does not finish within
  // the real implementation's bound (it is killed); INTERNAL when it fails.
  virtual absl::Status ReadMountInfoOfNamespaceFile(const std::string& ns_file,
                                                    std::string* text) = 0;
};

// The real /proc and /sys. `helper_timeout` bounds each child ReadMountInfoOfNamespaceFile
// forks, which also dies with the plugin (base/forked_child.h).
std::unique_ptr<ProcFs> NewRealProcFs(
    std::chrono::milliseconds helper_timeout = std::chrono::seconds(10));

}  // namespace rbdcsi

#endif  // RBDCSI_HOLDERS_PROCFS_H_
