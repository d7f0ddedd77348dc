#include "rbd/loop_device.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/fd.h"
#include "base/file_util.h"
#include "base/logging.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

using std::chrono::milliseconds;

// LOOP_CTL_GET_FREE and LOOP_CONFIGURE race with other attachers; each retry takes a new device.
constexpr int kMaxAttachAttempts = 16;
// How long Attach waits for devtmpfs/udev to create a new /dev/loopN node.
constexpr milliseconds kNodeWait{2000};
constexpr milliseconds kNodePoll{20};
// Like krbd, a busy detach is retried briefly: udev's blkid opens new devices for a moment.
constexpr milliseconds kBusyRetryDelays[] = {milliseconds(100), milliseconds(250)};

bool ParseDevNumbers(absl::string_view text, unsigned* major_out, unsigned* minor_out) {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(absl::StripAsciiWhitespace(text), absl::MaxSplits(':', 1));
  return absl::SimpleAtoi(parts.first, major_out) && absl::SimpleAtoi(parts.second, minor_out);
}

// A sysfs attribute under the directory `dir_fd`, read with one openat and one read: sysfs
// hands over a whole attribute (at most a page) in the first read. Cheaper than
// ReadSmallFile for the scans that read one attribute of every loop device.
std::optional<std::string> ReadAttributeAt(int dir_fd, const std::string& relative) {
  UniqueFd fd(openat(dir_fd, relative.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  char buf[8192];
  const ssize_t n = read(fd.get(), buf, sizeof(buf));
  if (n < 0 || static_cast<size_t>(n) == sizeof(buf)) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

bool ReadFlag(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  return text.ok() && absl::StripAsciiWhitespace(*text) == "1";
}

// After LOOP_CLR_FD found other openers and set autoclear instead: clears autoclear again, so
// the device stays attached, and returns the busy error that gets the holders named.
absl::Status RefuseLazyDetach(int fd, loop_info64& info, const std::string& dev) {
  const std::string what = absl::StrCat("detaching ", dev);
  info.lo_flags &= ~static_cast<__u32>(LO_FLAGS_AUTOCLEAR);
  if (ioctl(fd, LOOP_SET_STATUS64, &info) != 0 && ioctl(fd, LOOP_SET_STATUS64, &info) != 0) {
    // Still busy, so the holders get named; but the detach is now lazy, which must be seen.
    const std::string why = ErrnoToStatus(errno, "clearing autoclear").ToString();
    Logger("rbd")->error(
        "{}: another process has it open and the autoclear flag that "
        "LOOP_CLR_FD set could not be cleared ({}): it will detach when that "
        "process closes it",
        dev, why);
    return BusyError(absl::StrCat(what,
                                  ": another process has it open; it will be detached when that "
                                  "process closes it (the autoclear flag could not be cleared)"));
  }
  return ErrnoToStatus(EBUSY, absl::StrCat(what,
                                           ": another process has it open; it stays "
                                           "attached"));
}

// After a detach the kernel reported done: OK unless sysfs still shows the device attached to
// the expected file (or, with none expected, to any).
absl::Status CheckDetached(const std::string& sysfs_dir, const std::string& expected_backing_file,
                           const std::string& what) {
  absl::StatusOr<std::string> text = ReadSmallFile(absl::StrCat(sysfs_dir, "/loop/backing_file"));
  if (absl::IsNotFound(text.status())) return absl::OkStatus();
  if (!text.ok()) return Annotate(text.status(), absl::StrCat(what, ": checking the result"));
  bool deleted = false;
  if (!expected_backing_file.empty() &&
      ParseBackingFile(*text, &deleted) != CanonicalPath(expected_backing_file)) {
    return absl::OkStatus();  // detached, and already re-used by another attacher
  }
  return absl::InternalError(absl::StrCat(what,
                                          ": the kernel reported success but the device "
                                          "is still attached to ",
                                          ParseBackingFile(*text, &deleted)));
}

class RealLoopDevices : public LoopDevices {
 public:
  explicit RealLoopDevices(RealLoopDevicesOptions options) : options_(std::move(options)) {
    if (options_.clock == nullptr) options_.clock = NewRealClock();
  }

  absl::StatusOr<std::string> Attach(const std::string& backing_file, bool read_only) override;
  absl::Status Detach(const std::string& dev, const std::string& expected_backing_file) override;
  absl::StatusOr<std::vector<LoopInfo>> List() override {
    return ListWhere([](std::string_view) { return true; });
  }
  absl::StatusOr<std::vector<LoopInfo>> ListWhere(
      const std::function<bool(std::string_view backing_file)>& want) override;
  absl::StatusOr<LoopInfo> Get(const std::string& dev) override;
  absl::Status SetCapacity(const std::string& dev) override;
  absl::StatusOr<bool> IsFree(const std::string& dev) override;

 private:
  absl::StatusOr<UniqueFd> OpenNewNode(const std::string& path);
  absl::Status DetachOnce(const std::string& dev, const std::string& expected_backing_file);
  // The sysfs directory of the block device open as `fd`, e.g. /sys/dev/block/7:3.
  absl::StatusOr<std::string> SysfsDirOf(int fd, const std::string& dev);
  bool IsAttachedTo(const loop_info64& info, const std::string& sysfs_dir,
                    const std::string& expected_backing_file);
  // Whether the device open as `fd` is attached to `expected_backing_file` (to anything, when
  // empty); false when it is not attached at all. INVALID_ARGUMENT when it is no loop device.
  absl::StatusOr<bool> IsOurs(int fd, const std::string& sysfs_dir,
                              const std::string& expected_backing_file, const std::string& what);

  // The attached device /sys/block/NAME; nullopt when it is not attached.
  absl::StatusOr<std::optional<LoopInfo>> ReadInfo(absl::string_view name,
                                                   const std::string& backing);
  absl::StatusOr<std::optional<LoopInfo>> ReadInfo(absl::string_view name);

  RealLoopDevicesOptions options_;
  // LOOP_CTL_GET_FREE hands the same free device to every concurrent caller and all but one
  // then lose the race for it: unserialized, N concurrent stages need N rounds of retries and
  // run out of attempts. Attaches from this process take turns (each is a few ioctls); only
  // races with other processes remain for the retries.
  std::mutex attach_mu_;
};

absl::StatusOr<UniqueFd> RealLoopDevices::OpenNewNode(const std::string& path) {
  const auto deadline = options_.clock->Now() + kNodeWait;
  for (;;) {
    UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (fd.valid()) return fd;
    if (errno != ENOENT || options_.clock->Now() >= deadline) {
      return ErrnoToStatus(errno, absl::StrCat("opening ", path));
    }
    options_.clock->SleepFor(kNodePoll);
  }
}

absl::StatusOr<std::string> RealLoopDevices::Attach(const std::string& backing_file,
                                                    bool read_only) {
  const std::string what = absl::StrCat("attaching a loop device to ", backing_file);
  UniqueFd file(open(backing_file.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!file.valid()) return ErrnoToStatus(errno, what);
  struct stat st;
  if (fstat(file.get(), &st) != 0) return ErrnoToStatus(errno, what);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a regular file or block device"));
  }
  const std::string control = absl::StrCat(options_.dev_dir, "/loop-control");
  UniqueFd ctl(open(control.c_str(), O_RDWR | O_CLOEXEC));
  if (!ctl.valid()) return ErrnoToStatus(errno, absl::StrCat(what, ": opening ", control));

  loop_config config;
  std::memset(&config, 0, sizeof(config));
  config.fd = static_cast<__u32>(file.get());
  config.info.lo_flags = read_only ? LO_FLAGS_READ_ONLY : 0;
  // Informational only (64 bytes); sysfs backing_file has the full path.
  std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), backing_file.c_str(),
               LO_NAME_SIZE - 1);

  std::lock_guard<std::mutex> lock(attach_mu_);
  for (int attempt = 0; attempt < kMaxAttachAttempts; ++attempt) {
    const int number = ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (number < 0) return ErrnoToStatus(errno, absl::StrCat(what, ": finding a free device"));
    const std::string dev = absl::StrCat(options_.dev_dir, "/loop", number);
    absl::StatusOr<UniqueFd> fd = OpenNewNode(dev);
    if (!fd.ok()) {
      // ENXIO: the device is being torn down by someone else; take another one.
      if (absl::IsNotFound(fd.status()) && attempt + 1 < kMaxAttachAttempts) continue;
      return Annotate(fd.status(), what);
    }
    if (ioctl(fd->get(), LOOP_CONFIGURE, &config) == 0) return dev;
    // EBUSY: another process configured or claimed this device between GET_FREE and here.
    if (errno != EBUSY) return ErrnoToStatus(errno, absl::StrCat(what, ": configuring ", dev));
  }
  return absl::UnavailableError(
      absl::StrCat(what, ": every free loop device was taken by another process; ",
                   kMaxAttachAttempts, " attempts"));
}

absl::Status RealLoopDevices::Detach(const std::string& dev,
                                     const std::string& expected_backing_file) {
  absl::Status status = DetachOnce(dev, expected_backing_file);
  for (milliseconds delay : kBusyRetryDelays) {
    if (!IsBusy(status)) break;
    options_.clock->SleepFor(delay);
    status = DetachOnce(dev, expected_backing_file);
  }
  return status;
}

absl::StatusOr<std::string> RealLoopDevices::SysfsDirOf(int fd, const std::string& dev) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoToStatus(errno, absl::StrCat("examining ", dev));
  if (!S_ISBLK(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(dev, " is not a block device"));
  }
  return absl::StrCat(options_.sysfs_dir, "/dev/block/", major(st.st_rdev), ":", minor(st.st_rdev));
}

bool RealLoopDevices::IsAttachedTo(const loop_info64& info, const std::string& sysfs_dir,
                                   const std::string& expected_backing_file) {
  struct stat st;
  if (stat(expected_backing_file.c_str(), &st) == 0) {
    const dev_t lo_dev = static_cast<dev_t>(info.lo_device);
    if (major(lo_dev) == major(st.st_dev) && minor(lo_dev) == minor(st.st_dev) &&
        info.lo_inode == st.st_ino) {
      return true;
    }
  }
  // The file may be gone, or replaced under the same name: compare the path the kernel
  // remembers, so that a device attached to a deleted image can still be detached.
  absl::StatusOr<std::string> text = ReadSmallFile(absl::StrCat(sysfs_dir, "/loop/backing_file"));
  if (!text.ok()) return false;
  bool deleted = false;
  return ParseBackingFile(*text, &deleted) == CanonicalPath(expected_backing_file);
}

absl::StatusOr<bool> RealLoopDevices::IsOurs(int fd, const std::string& sysfs_dir,
                                             const std::string& expected_backing_file,
                                             const std::string& what) {
  loop_info64 info;
  if (ioctl(fd, LOOP_GET_STATUS64, &info) != 0) {
    if (errno == ENXIO) return false;  // not attached
    if (errno == ENOTTY || errno == EINVAL) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": not a loop device"));
    }
    // The status includes the backing file's attributes, which a FUSE file whose daemon died
    // cannot give (ENOTCONN, ECONNABORTED): such a device is identified by the path the kernel
    // remembers.
    const bool fuse_gone = errno == ENOTCONN || errno == ECONNABORTED;
    if (!fuse_gone || expected_backing_file.empty()) return ErrnoToStatus(errno, what);
    absl::StatusOr<std::string> text = ReadSmallFile(absl::StrCat(sysfs_dir, "/loop/backing_file"));
    bool deleted = false;
    return text.ok() && ParseBackingFile(*text, &deleted) == expected_backing_file;
  }
  // Else re-used for another file: ours is gone.
  return expected_backing_file.empty() || IsAttachedTo(info, sysfs_dir, expected_backing_file);
}

absl::Status RealLoopDevices::DetachOnce(const std::string& dev,
                                         const std::string& expected_backing_file) {
  const std::string what = absl::StrCat("detaching ", dev);
  // The exclusive open fails while a mount, a stacked device (dm, md) or another exclusive
  // opener holds the device, and while we hold it nobody else can re-attach it.
  UniqueFd fd(open(dev.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT || err == ENXIO || err == ENODEV) return absl::OkStatus();
    if (err == EBUSY) {
      return ErrnoToStatus(err, absl::StrCat(what,
                                             ": it is held by a mount, a stacked device or "
                                             "an exclusive opener and stays attached"));
    }
    return ErrnoToStatus(err, what);
  }
  ASSIGN_OR_RETURN(const std::string sysfs_dir, SysfsDirOf(fd.get(), dev));
  ASSIGN_OR_RETURN(const bool ours, IsOurs(fd.get(), sysfs_dir, expected_backing_file, what));
  if (!ours) return absl::OkStatus();
  if (ioctl(fd.get(), LOOP_CLR_FD, 0) != 0) {
    if (errno == ENXIO) return absl::OkStatus();
    return ErrnoToStatus(errno, what);
  }
  // LOOP_CLR_FD never fails for other openers: it sets autoclear instead, a lazy detach that
  // would happen whenever the last of them closes. Still readable status means exactly that.
  loop_info64 info;
  if (ioctl(fd.get(), LOOP_GET_STATUS64, &info) == 0) return RefuseLazyDetach(fd.get(), info, dev);
  if (errno != ENXIO) return ErrnoToStatus(errno, absl::StrCat(what, ": checking the result"));
  fd.reset();  // Since Linux 6.11 the detach itself happens on this last close.
  return CheckDetached(sysfs_dir, expected_backing_file, what);
}

absl::StatusOr<std::optional<LoopInfo>> RealLoopDevices::ReadInfo(absl::string_view name) {
  absl::StatusOr<std::string> backing =
      ReadSmallFile(absl::StrCat(options_.sysfs_dir, "/block/", name, "/loop/backing_file"));
  if (!backing.ok()) return std::nullopt;  // not attached, or detached meanwhile
  return ReadInfo(name, *backing);
}

absl::StatusOr<std::optional<LoopInfo>> RealLoopDevices::ReadInfo(absl::string_view name,
                                                                  const std::string& backing) {
  const std::string base = absl::StrCat(options_.sysfs_dir, "/block/", name);
  LoopInfo info;
  info.device = absl::StrCat(options_.dev_dir, "/", name);
  info.backing_file = ParseBackingFile(backing, &info.backing_deleted);
  absl::StatusOr<std::string> numbers = ReadSmallFile(absl::StrCat(base, "/dev"));
  if (!numbers.ok()) return std::nullopt;
  if (!ParseDevNumbers(*numbers, &info.major, &info.minor)) {
    return absl::InternalError(absl::StrCat("unexpected content of ", base, "/dev"));
  }
  info.read_only = ReadFlag(absl::StrCat(base, "/ro"));
  info.autoclear = ReadFlag(absl::StrCat(base, "/loop/autoclear"));
  if (absl::StatusOr<std::string> seq = ReadSmallFile(absl::StrCat(base, "/diskseq")); seq.ok()) {
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*seq), &info.diskseq)) info.diskseq = 0;
  }
  return info;
}

absl::StatusOr<std::vector<LoopInfo>> RealLoopDevices::ListWhere(
    const std::function<bool(std::string_view backing_file)>& want) {
  const std::string block_dir = absl::StrCat(options_.sysfs_dir, "/block");
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(block_dir.c_str()), closedir);
  if (dir == nullptr) return ErrnoToStatus(errno, absl::StrCat("listing ", block_dir));
  std::vector<LoopInfo> out;
  while (dirent* e = readdir(dir.get())) {
    absl::string_view name = e->d_name;
    unsigned number = 0;
    if (!absl::StartsWith(name, "loop") || !absl::SimpleAtoi(name.substr(4), &number)) continue;
    std::optional<std::string> backing =
        ReadAttributeAt(dirfd(dir.get()), absl::StrCat(name, "/loop/backing_file"));
    if (!backing) continue;  // not attached, or detached meanwhile
    bool deleted = false;
    if (!want(ParseBackingFile(*backing, &deleted))) continue;
    ASSIGN_OR_RETURN(std::optional<LoopInfo> info, ReadInfo(name, *backing));
    if (info) out.push_back(*std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const LoopInfo& a, const LoopInfo& b) {
    return std::make_pair(a.major, a.minor) < std::make_pair(b.major, b.minor);
  });
  return out;
}

absl::StatusOr<LoopInfo> RealLoopDevices::Get(const std::string& dev) {
  absl::string_view name = dev;
  unsigned number = 0;
  if (!absl::ConsumePrefix(&name, options_.dev_dir + "/") || !absl::StartsWith(name, "loop") ||
      !absl::SimpleAtoi(name.substr(4), &number)) {
    return absl::NotFoundError(absl::StrCat(dev, " is not a loop device"));
  }
  ASSIGN_OR_RETURN(std::optional<LoopInfo> info, ReadInfo(name));
  if (!info) return absl::NotFoundError(absl::StrCat(dev, " is not attached"));
  return *std::move(info);
}

absl::Status RealLoopDevices::SetCapacity(const std::string& dev) {
  const std::string what = absl::StrCat("refreshing the capacity of ", dev);
  UniqueFd fd(open(dev.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, what);
  if (ioctl(fd.get(), LOOP_SET_CAPACITY, 0) != 0) return ErrnoToStatus(errno, what);
  return absl::OkStatus();
}

absl::StatusOr<bool> RealLoopDevices::IsFree(const std::string& dev) {
  UniqueFd fd(open(dev.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
  if (fd.valid()) return true;
  if (errno == EBUSY) return false;
  return ErrnoToStatus(errno, absl::StrCat("checking whether ", dev, " is in use"));
}

}  // namespace

std::unique_ptr<LoopDevices> NewRealLoopDevices(RealLoopDevicesOptions options) {
  return std::make_unique<RealLoopDevices>(std::move(options));
}

std::string ParseBackingFile(std::string_view text, bool* deleted) {
  absl::string_view content(text.data(), text.size());
  if (absl::EndsWith(content, "\n")) content.remove_suffix(1);
  *deleted = absl::ConsumeSuffix(&content, " (deleted)");
  return std::string(content);
}

}  // namespace rbdcsi
