#include "base/file_util.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/status.h"

namespace rbdcsi {

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("creating a directory: empty path");
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return ErrnoToStatus(ENOTDIR, absl::StrCat("creating directory ", path));
  }
  const std::string parent = Dirname(path);
  if (parent != path && parent != "." && parent != "/") RETURN_IF_ERROR(MakeDirs(parent, mode));
  // Another caller may create it at the same time: EEXIST is success.
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("creating directory ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceNumber> StatBlockDevice(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("examining ", path));
  if (!S_ISBLK(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a block device"));
  }
  return DeviceNumber{major(st.st_rdev), minor(st.st_rdev)};
}

absl::Status ReplaceFile(const std::string& path, std::string_view content) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid(), ".", counter.fetch_add(1));
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("creating ", tmp));
  absl::Status st;
  while (st.ok() && !content.empty()) {
    const ssize_t n = write(fd.get(), content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = ErrnoToStatus(errno, absl::StrCat("writing ", tmp));
    } else {
      content.remove_prefix(static_cast<size_t>(n));
    }
  }
  if (st.ok() && fsync(fd.get()) != 0) st = ErrnoToStatus(errno, absl::StrCat("syncing ", tmp));
  fd.reset();
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoToStatus(errno, absl::StrCat("renaming ", tmp, " to ", path));
  }
  if (!st.ok()) unlink(tmp.c_str());
  return st;
}

absl::Status FsyncDir(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("opening directory ", path));
  if (fsync(fd.get()) != 0) return ErrnoToStatus(errno, absl::StrCat("syncing directory ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileUpTo(const std::string& path, size_t limit) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("opening ", path));
  const auto too_large = [&] {
    return absl::OutOfRangeError(absl::StrCat("reading ", path, ": larger than ", limit, " bytes"));
  };
  struct stat st {};
  if (fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && static_cast<size_t>(st.st_size) > limit) {
    return too_large();  // without reading any of it
  }
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t got = read(fd.get(), buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return ErrnoToStatus(errno, absl::StrCat("reading ", path));
    if (got == 0) break;
    out.append(buf, static_cast<size_t>(got));
    if (out.size() > limit) return too_large();
  }
  return out;
}

absl::StatusOr<UniqueFd> LockFileExclusive(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("opening lock file ", path));
  while (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(path, " is locked by another process"));
    }
    return ErrnoToStatus(errno, absl::StrCat("locking ", path));
  }
  return fd;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  return ReadFileUpTo(path, std::numeric_limits<size_t>::max());
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  return ReadFileUpTo(path, 1u << 20);
}

std::string Dirname(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

absl::StatusOr<uint64_t> BlockDeviceSize(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("opening ", path));
  uint64_t size = 0;
  if (ioctl(fd.get(), BLKGETSIZE64, &size) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("reading the size of ", path));
  }
  return size;
}

}  // namespace rbdcsi
