#include "driver/request_paths.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/fd.h"
#include "base/paths.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

// `path` without empty components ("//", a trailing "/").
std::string Lexical(const std::string& path) {
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  return "/" + absl::StrJoin(parts, "/");
}

// The part of `path` below `dir` ("" when equal); nullopt when `path` is not under it.
std::optional<std::string> RelativeTo(const std::string& path, const std::string& dir) {
  if (!IsUnder(path, dir)) return std::nullopt;
  return dir == "/" ? path.substr(1) : path.substr(std::min(path.size(), dir.size() + 1));
}

// openat2 beneath `dir_fd`, refusing every symlink; retried on EAGAIN (a concurrent rename).
int OpenBeneath(int dir_fd, const std::string& rel) {
  struct open_how how = {};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    const long fd = syscall(SYS_openat2, dir_fd, rel.c_str(), &how, sizeof(how));
    if (fd >= 0 || errno != EAGAIN || attempt == 8) return static_cast<int>(fd);
  }
}

absl::Status Refused(const std::string& field, const std::string& path, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", path, " ", why));
}

// The file system `fd` lies on is not proc or sysfs.
absl::Status CheckFileSystem(int fd, const std::string& field, const std::string& path) {
  struct statfs fs {};
  if (fstatfs(fd, &fs) != 0) return ErrnoToStatus(errno, absl::StrCat("statfs of ", path));
  if (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC) {
    return Refused(field, path, "lies on a proc or sysfs file system");
  }
  return absl::OkStatus();
}

absl::Status CheckNotProtected(const PathRules& rules, const std::string& canonical,
                               const std::string& field) {
  std::vector<std::string> dirs = {"/proc", "/sys", "/dev"};
  for (const std::string& dir : rules.protected_dirs) dirs.push_back(CanonicalPath(dir));
  for (const std::string& dir : dirs) {
    if (IsUnder(canonical, dir)) {
      return Refused(field, canonical, absl::StrCat("lies in ", dir, ", which is not the CO's"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsUnder(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  return path == dir ||
         (path.substr(0, dir.size()) == dir && path.size() > dir.size() && path[dir.size()] == '/');
}

absl::StatusOr<std::string> ResolveRequestPath(const PathRules& rules, std::string_view path_view,
                                               std::string_view field_view, PathNeed need) {
  const std::string path = Lexical(std::string(path_view));
  const std::string field(field_view);
  // The CO may name paths through the configured directory or through its real path.
  const std::string configured = Lexical(rules.kubelet_dir);
  const std::string real = CanonicalPath(configured);
  std::optional<std::string> rel = RelativeTo(path, configured);
  if (!rel) rel = RelativeTo(path, real);
  if (!rel || rel->empty()) {
    return Refused(field, path,
                   absl::StrCat("does not lie under the kubelet directory ", configured,
                                " (serve --kubelet-dir)"));
  }
  const std::string canonical = (real == "/" ? "" : real) + "/" + *rel;
  RETURN_IF_ERROR(CheckNotProtected(rules, canonical, field));
  UniqueFd root(open(real.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    return ErrnoToStatus(errno, absl::StrCat("opening the kubelet directory ", real));
  }
  std::string at = *rel;
  bool whole = true;
  UniqueFd fd(OpenBeneath(root.get(), at));
  if (!fd.valid() && errno == ENOENT && need != PathNeed::kPath) {
    // The last component may be missing; what leads to it must still hold no symlink.
    const size_t slash = at.rfind('/');
    at = slash == std::string::npos ? "." : at.substr(0, slash);
    whole = false;
    fd.reset(OpenBeneath(root.get(), at));
    if (!fd.valid() && errno == ENOENT && need == PathNeed::kNone) return canonical;
  }
  if (!fd.valid()) {
    const int err = errno;
    switch (err) {
      case ELOOP:
        return Refused(field, path, "contains a symbolic link");
      case EXDEV:
        return Refused(field, path, "leaves the kubelet directory");
      case ENOTDIR:
        return Refused(field, path, "has a component that is not a directory");
      case ENOENT:
        if (need == PathNeed::kPath) {
          return absl::NotFoundError(absl::StrCat(field, " ", path, " does not exist"));
        }
        return Refused(field, path,
                       "has a parent that is not a directory that exists (the CO makes it)");
      case ENOSYS:
        return absl::FailedPreconditionError("this kernel lacks openat2 (Linux 5.6 or later)");
      default:
        return ErrnoToStatus(err, absl::StrCat("resolving ", field, " ", path));
    }
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat of ", path));
  if (!whole && !S_ISDIR(st.st_mode)) {
    return Refused(field, path, "has a parent that is not a directory");
  }
  RETURN_IF_ERROR(CheckFileSystem(fd.get(), field, path));
  return canonical;
}

absl::Status VerifyResolved(const PathRules& rules, const std::string& canonical,
                            std::string_view field_view) {
  const std::string field(field_view);
  absl::StatusOr<std::string> again = ResolveRequestPath(rules, canonical, field, PathNeed::kPath);
  if (again.ok()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(again.status().message(), " (it changed while the call ran)"));
}

}  // namespace rbdcsi
