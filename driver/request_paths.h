// Where a CO's staging and target paths may lie, and their resolution without following any
// symbolic link (issue: a staging path that is a symlink got ext4 mounted over its target).
#ifndef RBDCSI_DRIVER_REQUEST_PATHS_H_
#define RBDCSI_DRIVER_REQUEST_PATHS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rbdcsi {

struct PathRules {
  // Every staging and target path must lie strictly under this directory (serve --kubelet-dir).
  std::string kubelet_dir = "/var/lib/kubelet";
  // Directories no path may lie in, even under the kubelet directory: the plugin's own state
  // (and data, key, fuse directories). /proc, /sys and /dev are always refused.
  std::vector<std::string> protected_dirs;
};

// What must already exist of a path.
enum class PathNeed {
  kPath,    // the path itself (publish's staging path, stats and expand)
  kParent,  // its parent directory; the last component may be missing (stage, publish target)
  kNone,    // nothing (unstage, unpublish: a missing path is "already done")
};

// Resolves the request field `field` = `path` (already checked by ValidatePath) beneath the
// kubelet directory with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS),
// so no component, the last included, may be a symlink. Returns the path in CanonicalPath form
// (the kubelet directory's real path joined with the rest), which callers use for every later
// step and re-check with VerifyResolved right before they mount on it.
// INVALID_ARGUMENT naming the field: outside the kubelet directory (or the directory itself), a
// symlink in any component, a component that is not a directory, inside a protected directory
// or on a proc or sysfs file system, or (kParent) a parent that does not exist.
// NOT_FOUND when (kPath) the path does not exist.
absl::StatusOr<std::string> ResolveRequestPath(const PathRules& rules, std::string_view path,
                                               std::string_view field, PathNeed need);

// FAILED_PRECONDITION unless `canonical` (a ResolveRequestPath result) still exists and resolves
// beneath the kubelet directory without a symlink: called after creating it, right before
// mounting on it.
absl::Status VerifyResolved(const PathRules& rules, const std::string& canonical,
                            std::string_view field);

// `path` is `dir` or lies below it (both lexically normal).
bool IsUnder(std::string_view path, std::string_view dir);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_REQUEST_PATHS_H_
