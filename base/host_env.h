// The host as the node logic sees it: files and directories, filesystem usage, the clock and
// sleeping, behind one interface with a real and a fake implementation (leveldb's Env).
#ifndef RBDCSI_BASE_HOST_ENV_H_
#define RBDCSI_BASE_HOST_ENV_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/clock.h"
#include "base/device_number.h"

namespace rbdcsi {

enum class FileType { kRegular, kDirectory, kBlockDevice, kOther };

struct FileInfo {
  FileType type = FileType::kOther;
  uint64_t size = 0;  // regular files: bytes
  DeviceNumber rdev;  // block devices: the device's numbers
};

// statvfs, in bytes and inodes.
struct FsUsage {
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;       // f_bfree: also what only root may use
  uint64_t available_bytes = 0;  // f_bavail
  uint64_t total_inodes = 0;
  uint64_t free_inodes = 0;
  uint64_t available_inodes = 0;
};

// Implementations are thread-safe. Paths are used as given (symlinks are followed, as stat()
// does); errors come through ErrnoToStatus (NOT_FOUND when a path or a parent is missing).
class HostEnv : public Clock {
 public:
  // What is at `path`. NOT_FOUND when nothing is (also when a parent is not a directory).
  virtual absl::StatusOr<FileInfo> Stat(const std::string& path) = 0;
  // Creates one directory; ALREADY_EXISTS when `path` exists (of whatever type).
  virtual absl::Status MakeDir(const std::string& path, mode_t mode) = 0;
  // Creates `path` and missing parents; existing directories are OK.
  virtual absl::Status MakeDirs(const std::string& path, mode_t mode) = 0;
  // Creates an empty regular file unless something exists at `path` (then OK, untouched); a
  // symlink at `path` is never followed (an error).
  virtual absl::Status CreateFile(const std::string& path, mode_t mode) = 0;
  // Removes a file or an empty directory; a missing path is OK. FAILED_PRECONDITION (busy)
  // for a mount point, as rmdir(2) reports EBUSY.
  virtual absl::Status Remove(const std::string& path) = 0;
  // Usage of the filesystem `path` lies on.
  virtual absl::StatusOr<FsUsage> StatFs(const std::string& path) = 0;
  // The size of the block device `path` in bytes.
  virtual absl::StatusOr<uint64_t> BlockDeviceSize(const std::string& path) = 0;
};

// The real host. Thread-safe.
std::unique_ptr<HostEnv> NewRealHostEnv();

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_HOST_ENV_H_
