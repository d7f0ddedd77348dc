#include "base/host_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/file_util.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

FileType TypeOf(mode_t mode) {
  if (S_ISREG(mode)) return FileType::kRegular;
  if (S_ISDIR(mode)) return FileType::kDirectory;
  if (S_ISBLK(mode)) return FileType::kBlockDevice;
  return FileType::kOther;
}

class RealHostEnv : public HostEnv {
 public:
  std::chrono::steady_clock::time_point Now() override { return std::chrono::steady_clock::now(); }
  void SleepFor(std::chrono::nanoseconds d) override { std::this_thread::sleep_for(d); }

  absl::StatusOr<FileInfo> Stat(const std::string& path) override {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      // ENOTDIR: a parent is not a directory, so nothing is at `path`.
      return ErrnoToStatus(errno == ENOTDIR ? ENOENT : errno, absl::StrCat("examining ", path));
    }
    FileInfo info;
    info.type = TypeOf(st.st_mode);
    info.size = static_cast<uint64_t>(st.st_size);
    info.rdev = {major(st.st_rdev), minor(st.st_rdev)};
    return info;
  }

  absl::Status MakeDir(const std::string& path, mode_t mode) override {
    if (mkdir(path.c_str(), mode) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("creating directory ", path));
    }
    return absl::OkStatus();
  }

  absl::Status MakeDirs(const std::string& path, mode_t mode) override {
    return rbdcsi::MakeDirs(path, mode);
  }

  absl::Status CreateFile(const std::string& path, mode_t mode) override {
    UniqueFd fd(open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("creating file ", path));
    return absl::OkStatus();
  }

  absl::Status Remove(const std::string& path) override {
    if (unlink(path.c_str()) == 0) return absl::OkStatus();
    int err = errno;
    if (err == EISDIR || err == EPERM) err = rmdir(path.c_str()) == 0 ? 0 : errno;
    if (err == 0 || err == ENOENT) return absl::OkStatus();
    return ErrnoToStatus(err, absl::StrCat("removing ", path));
  }

  absl::StatusOr<FsUsage> StatFs(const std::string& path) override {
    struct statvfs vfs {};
    if (statvfs(path.c_str(), &vfs) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("statfs of ", path));
    }
    FsUsage u;
    u.total_bytes = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    u.free_bytes = static_cast<uint64_t>(vfs.f_bfree) * vfs.f_frsize;
    u.available_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    u.total_inodes = vfs.f_files;
    u.free_inodes = vfs.f_ffree;
    u.available_inodes = vfs.f_favail;
    return u;
  }

  absl::StatusOr<uint64_t> BlockDeviceSize(const std::string& path) override {
    return rbdcsi::BlockDeviceSize(path);
  }
};

}  // namespace

std::unique_ptr<HostEnv> NewRealHostEnv() { return std::make_unique<RealHostEnv>(); }

}  // namespace rbdcsi
