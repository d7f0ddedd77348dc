// Small file-system helpers shared by the rbd/ mappers.
#ifndef RBDCSI_BASE_FILE_UTIL_H_
#define RBDCSI_BASE_FILE_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/device_number.h"
#include "base/fd.h"
#include "base/paths.h"

namespace rbdcsi {

// Creates `path` and its missing parents with `mode`; existing directories are OK.
absl::Status MakeDirs(const std::string& path, mode_t mode);

// The device number of the block device node `path`. INVALID_ARGUMENT when it is not a block
// device; errno (NOT_FOUND when absent) otherwise.
absl::StatusOr<DeviceNumber> StatBlockDevice(const std::string& path);

// The size of the block device `path` in bytes (BLKGETSIZE64).
absl::StatusOr<uint64_t> BlockDeviceSize(const std::string& path);

// Replaces `path` with `content` atomically: writes it to a temporary file beside `path`
// ("PATH.tmp.PID.N", unique per process and call, mode 0600), fsync()s that and renames it over
// `path`. On failure the temporary file is removed and `path` is left as it was. For the rename
// to be durable too, FsyncDir() the directory afterwards.
absl::Status ReplaceFile(const std::string& path, std::string_view content);

// fsync()s a directory so that a rename or unlink inside it is durable.
absl::Status FsyncDir(const std::string& path);

// Reads a whole file until EOF (works for /proc and sysfs files, whose size stat() does not
// tell). Errors through ErrnoToStatus: NOT_FOUND when it does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// ReadWholeFile for what must be at most `limit` bytes: OUT_OF_RANGE when it is larger, found
// before reading anything when `path` is a regular file (so a huge file is never read in).
absl::StatusOr<std::string> ReadFileUpTo(const std::string& path, size_t limit);

// ReadFileUpTo 1 MiB, for what must be small, e.g. a sysfs attribute.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);

// Opens (creating, 0600, never through a symlink) and flock()s `path` exclusively without
// waiting; the lock lasts as long as the returned descriptor is open. FAILED_PRECONDITION when
// another open file description holds it.
absl::StatusOr<UniqueFd> LockFileExclusive(const std::string& path);

// The parent directory of `path` ("/a/b" -> "/a", "b" -> ".").
std::string Dirname(std::string_view path);

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_FILE_UTIL_H_
