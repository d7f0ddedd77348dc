#include "holders/procfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/fd.h"
#include "base/forked_child.h"
#include "base/status.h"
#include "holders/kernel_mounts.h"

namespace rbdcsi {
namespace {

// Accepts a decimal number without sign or leading zeros ("0" itself is fine).
bool ParseNumber(const char* name, int* number) {
  if (*name < '0' || *name > '9' || (name[0] == '0' && name[1] != 0)) return false;
  long value = 0;
  for (const char* p = name; *p; ++p) {
    if (*p < '0' || *p > '9') return false;
    value = value * 10 + (*p - '0');
    if (value > (1L << 30)) return false;
  }
  *number = static_cast<int>(value);
  return true;
}

bool ParsePid(const char* name, pid_t* pid) {
  int value;
  if (!ParseNumber(name, &value) || value == 0) return false;
  *pid = value;
  return true;
}

// Fills `path` with /proc/PID[/task/TID]/<leaf>.
void TaskPath(char (&path)[96], pid_t pid, pid_t tid, const char* leaf) {
  if (tid == 0) {
    std::snprintf(path, sizeof(path), "/proc/%d/%s", pid, leaf);
  } else {
    std::snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", pid, tid, leaf);
  }
}

// statx that never asks a remote filesystem for fresh attributes. Returns errno or 0.
int StatNoSync(int dirfd, const char* path, unsigned mask, struct statx* out) {
  if (::statx(dirfd, path, AT_STATX_DONT_SYNC, mask, out) != 0) return errno;
  return 0;
}

ProcessFile ToProcessFile(const struct statx& st) {
  ProcessFile f;
  f.dev = {st.stx_dev_major, st.stx_dev_minor};
  f.rdev = {st.stx_rdev_major, st.stx_rdev_minor};
  f.block_device = S_ISBLK(st.stx_mode);
  return f;
}

absl::Status ReadFd(int fd, const char* path, std::string* text) {
  text->clear();
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("cannot read ", path));
    }
    if (n == 0) return absl::OkStatus();
    text->append(buffer, static_cast<size_t>(n));
  }
}

absl::Status ReadPath(const char* path, std::string* text) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  return ReadFd(fd.get(), path, text);
}

std::string ReadTrimmed(const std::string& path) {
  std::string text;
  if (!ReadPath(path.c_str(), &text).ok()) return "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

DeviceNumber ParseDevFile(const std::string& text) {
  DeviceNumber d;
  if (std::sscanf(text.c_str(), "%u:%u", &d.major, &d.minor) != 2) return {};
  return d;
}

// Calls `fn(name)` for each entry of the directory open at `fd` except "." and "..".
template <typename Fn>
absl::Status ForEachEntry(int fd, const char* path, Fn fn) {
  alignas(8) char buffer[32768];
  while (true) {
    const ssize_t n = ::getdents64(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("cannot list ", path));
    }
    if (n == 0) return absl::OkStatus();
    for (ssize_t off = 0; off < n;) {
      const auto* entry = reinterpret_cast<const struct dirent64*>(buffer + off);
      off += entry->d_reclen;
      const char* name = entry->d_name;
      if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
      fn(name);
    }
  }
}

class RealProcFs : public ProcFs {
 public:
  explicit RealProcFs(std::chrono::milliseconds helper_timeout) : helper_timeout_(helper_timeout) {}

  pid_t SelfPid() override { return ::getpid(); }

  // /proc/PID as an O_PATH directory, kept for consecutive calls about the same process. -1 with
  // errno set if the process is gone.
  int ProcessDir(pid_t pid) {
    if (pid == cached_pid_ && cached_dir_.valid()) return cached_dir_.get();
    char path[96];
    TaskPath(path, pid, 0, "");
    cached_dir_.reset(::open(path, O_PATH | O_DIRECTORY | O_CLOEXEC));
    cached_pid_ = cached_dir_.valid() ? pid : 0;
    return cached_dir_.get();
  }

  absl::Status ListProcesses(std::vector<pid_t>* pids) override {
    pids->clear();
    cached_dir_.reset();  // A new scan: pids may have been reused since.
    cached_pid_ = 0;
    UniqueFd fd(::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoToStatus(errno, "cannot open /proc");
    return ForEachEntry(fd.get(), "/proc", [pids](const char* name) {
      pid_t pid;
      if (ParsePid(name, &pid)) pids->push_back(pid);
    });
  }

  absl::StatusOr<int> ThreadCount(pid_t pid) override {
    // /proc/PID/task reports 2 + the number of threads as its link count: no listing needed.
    const int dir = ProcessDir(pid);
    if (dir < 0) return ErrnoToStatus(errno, absl::StrCat("/proc/", pid));
    struct statx st;
    if (int err = StatNoSync(dir, "task", STATX_NLINK, &st)) {
      return ErrnoToStatus(err, absl::StrCat("/proc/", pid, "/task"));
    }
    return st.stx_nlink > 2 ? static_cast<int>(st.stx_nlink - 2) : 1;
  }

  absl::Status ListThreads(pid_t pid, std::vector<pid_t>* tids) override {
    tids->clear();
    char path[96];
    TaskPath(path, pid, 0, "task");
    const int dir = ProcessDir(pid);
    if (dir < 0) return ErrnoToStatus(errno, path);
    UniqueFd fd(::openat(dir, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
    return ForEachEntry(fd.get(), path, [tids](const char* name) {
      pid_t tid;
      if (ParsePid(name, &tid)) tids->push_back(tid);
    });
  }

  absl::StatusOr<uint64_t> MountNamespaceOf(pid_t pid, pid_t tid) override {
    const int dir = ProcessDir(pid);
    char path[96];
    if (tid == 0) {
      std::snprintf(path, sizeof(path), "ns/mnt");
    } else {
      std::snprintf(path, sizeof(path), "task/%d/ns/mnt", tid);
    }
    struct statx st;
    if (dir < 0) return ErrnoToStatus(errno, absl::StrCat("/proc/", pid));
    if (int err = StatNoSync(dir, path, STATX_INO, &st)) {
      return ErrnoToStatus(err, absl::StrCat("/proc/", pid, "/", path));
    }
    return st.stx_ino;
  }

  absl::Status ReadMountInfo(pid_t pid, pid_t tid, std::string* text) override {
    char path[96];
    TaskPath(path, pid, tid, "mountinfo");
    return ReadPath(path, text);
  }

  absl::Status ListProcessFiles(pid_t pid, std::vector<ProcessFile>* files) override {
    files->clear();
    char path[96];
    TaskPath(path, pid, 0, "");
    const int proc_dir = ProcessDir(pid);
    if (proc_dir < 0) return ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
    static constexpr std::pair<const char*, ProcessFile::Slot> kSlots[] = {
        {"cwd", ProcessFile::Slot::kCwd},
        {"root", ProcessFile::Slot::kRoot},
        {"exe", ProcessFile::Slot::kExe}};
    struct statx st;
    for (const auto& [leaf, slot] : kSlots) {
      if (StatNoSync(proc_dir, leaf, STATX_TYPE, &st) != 0) continue;  // kernel thread
      ProcessFile f = ToProcessFile(st);
      f.slot = slot;
      files->push_back(f);
    }
    UniqueFd fd_dir(::openat(proc_dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd_dir.valid()) return ErrnoToStatus(errno, absl::StrCat("cannot open ", path, "fd"));
    const bool self = pid == ::getpid();
    const int listing_fd = fd_dir.get();
    const int proc_fd = proc_dir;
    return ForEachEntry(fd_dir.get(), path, [&](const char* name) {
      int fd;
      if (!ParseNumber(name, &fd)) return;
      if (self && (fd == listing_fd || fd == proc_fd)) return;
      if (StatNoSync(listing_fd, name, STATX_TYPE, &st) != 0) return;
      ProcessFile f = ToProcessFile(st);
      f.slot = ProcessFile::Slot::kFd;
      f.fd = fd;
      files->push_back(f);
    });
  }

  absl::StatusOr<std::string> FilePath(pid_t pid, const ProcessFile& file) override {
    char path[96];
    switch (file.slot) {
      case ProcessFile::Slot::kCwd:
        TaskPath(path, pid, 0, "cwd");
        break;
      case ProcessFile::Slot::kRoot:
        TaskPath(path, pid, 0, "root");
        break;
      case ProcessFile::Slot::kExe:
        TaskPath(path, pid, 0, "exe");
        break;
      case ProcessFile::Slot::kFd:
        std::snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, file.fd);
        break;
    }
    char target[4096];
    const ssize_t n = ::readlink(path, target, sizeof(target));
    if (n < 0) return ErrnoToStatus(errno, absl::StrCat("cannot read link ", path));
    return std::string(target, static_cast<size_t>(n));
  }

  absl::StatusOr<std::string> ReadProcessFile(pid_t pid, std::string_view name) override {
    const std::string path = absl::StrCat("/proc/", pid, "/", AsAbsl(name));
    std::string text;
    RETURN_IF_ERROR(ReadPath(path.c_str(), &text));
    return text;
  }

  absl::StatusOr<std::vector<DeviceNumber>> ListPartitions(DeviceNumber device) override {
    const std::string dir = absl::StrFormat("/sys/dev/block/%u:%u", device.major, device.minor);
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("cannot open ", dir));
    std::vector<std::string> names;
    RETURN_IF_ERROR(ForEachEntry(fd.get(), dir.c_str(), [&](const char* name) {
      if (::faccessat(fd.get(), absl::StrCat(name, "/partition").c_str(), F_OK, 0) == 0) {
        names.emplace_back(name);
      }
    }));
    std::vector<DeviceNumber> partitions;
    for (const std::string& name : names) {
      const DeviceNumber d = ParseDevFile(ReadTrimmed(absl::StrCat(dir, "/", name, "/dev")));
      if (d.major != 0 || d.minor != 0) partitions.push_back(d);
    }
    return partitions;
  }

  absl::StatusOr<std::vector<StackedDevice>> ListStackedDevices(DeviceNumber device) override {
    const std::string dir =
        absl::StrFormat("/sys/dev/block/%u:%u/holders", device.major, device.minor);
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("cannot open ", dir));
    std::vector<StackedDevice> stacked;
    RETURN_IF_ERROR(ForEachEntry(fd.get(), dir.c_str(), [&](const char* name) {
      StackedDevice s;
      s.name = name;
      stacked.push_back(std::move(s));
    }));
    for (StackedDevice& s : stacked) {
      const std::string base = absl::StrCat("/sys/class/block/", s.name);
      s.number = ParseDevFile(ReadTrimmed(base + "/dev"));
      s.dm_name = ReadTrimmed(base + "/dm/name");
      s.dm_uuid = ReadTrimmed(base + "/dm/uuid");
    }
    return stacked;
  }

  absl::StatusOr<std::string> ReadSwaps() override {
    std::string text;
    RETURN_IF_ERROR(ReadPath("/proc/swaps", &text));
    return text;
  }

  absl::StatusOr<ProcessFile> StatPath(const std::string& path) override {
    struct statx st;
    if (int err = StatNoSync(AT_FDCWD, path.c_str(), STATX_TYPE, &st)) {
      return ErrnoToStatus(err, absl::StrCat("cannot stat ", path));
    }
    return ToProcessFile(st);
  }

  absl::StatusOr<DeviceNumber> NsfsDevice() override {
    struct statx st;
    if (int err = StatNoSync(AT_FDCWD, "/proc/self/ns/mnt", STATX_INO, &st)) {
      return ErrnoToStatus(err, "cannot stat /proc/self/ns/mnt");
    }
    return DeviceNumber{st.stx_dev_major, st.stx_dev_minor};
  }

  absl::StatusOr<std::vector<KernelMountNamespace>> ListMountNamespaces() override {
    return ListKernelMountNamespaces();
  }

  absl::StatusOr<std::vector<MountInfo>> ListNamespaceMounts(
      const KernelMountNamespace& ns, const std::vector<DeviceNumber>& devices) override {
    return mount_lister_.List(ns, devices);
  }

  absl::Status ReadMountInfoOfNamespaceFile(const std::string& ns_file, std::string* text) override;

 private:
  const std::chrono::milliseconds helper_timeout_;
  pid_t cached_pid_ = 0;
  UniqueFd cached_dir_;
  KernelMountLister mount_lister_;
};

absl::Status RealProcFs::ReadMountInfoOfNamespaceFile(const std::string& ns_file,
                                                      std::string* text) {
  UniqueFd ns(::open(ns_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return ErrnoToStatus(errno, absl::StrCat("cannot open ", ns_file));
  // A child joins the namespace (a multi-threaded process cannot) and copies its mountinfo out.
  const int ns_fd = ns.get();
  ASSIGN_OR_RETURN(
      ForkedChildResult child,
      RunForkedChild(absl::StrCat("reading the mount table of the namespace at ", ns_file),
                     helper_timeout_, [ns_fd](int out) {
                       if (::setns(ns_fd, CLONE_NEWNS) != 0) ::_exit(2);
                       const int fd = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
                       if (fd < 0) ::_exit(3);
                       char buffer[8192];
                       ssize_t n;
                       while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) {
                         if (::write(out, buffer, static_cast<size_t>(n)) != n) ::_exit(4);
                       }
                       ::_exit(n == 0 ? 0 : 5);
                     }));
  if (!WIFEXITED(child.wait_status) || WEXITSTATUS(child.wait_status) != 0) {
    return absl::InternalError(
        absl::StrCat("could not read the mount table of the namespace at ", ns_file));
  }
  *text = std::move(child.output);
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<ProcFs> NewRealProcFs(std::chrono::milliseconds helper_timeout) {
  return std::make_unique<RealProcFs>(helper_timeout);
}

}  // namespace rbdcsi
