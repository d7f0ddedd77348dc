// Small file-system helpers shared by the rbd/ mappers.
#ifndef RBDCSI_RBD_FILE_UTIL_H_
#define RBDCSI_RBD_FILE_UTIL_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/paths.h"

namespace rbdcsi {

// Creates `path` and its missing parents with `mode`; existing directories are OK.
absl::Status MakeDirs(const std::string& path, mode_t mode);

// fsync()s a directory so that a rename or unlink inside it is durable.
absl::Status FsyncDir(const std::string& path);

// Reads a whole (small) file, e.g. a sysfs attribute. NOT_FOUND when it does not exist.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);

// The parent directory of `path` ("/a/b" -> "/a", "b" -> ".").
std::string Dirname(std::string_view path);

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_FILE_UTIL_H_
