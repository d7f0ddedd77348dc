// Paths in the form the kernel reports them.
#ifndef RBDCSI_BASE_PATHS_H_
#define RBDCSI_BASE_PATHS_H_

#include <string>

namespace rbdcsi {

// The form of `path` that mountinfo and sysfs show: "//", "." and a trailing "/" are folded
// and symlinks in existing components are resolved (realpath). When the last component does
// not exist (a deleted file, a directory not made yet), its canonical parent joined with it;
// the lexically normal path when neither resolves.
std::string CanonicalPath(const std::string& path);

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_PATHS_H_
