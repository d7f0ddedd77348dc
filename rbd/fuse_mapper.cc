#include "rbd/fuse_mapper.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "base/file_util.h"
#include "base/hash.h"
#include "base/logging.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;

absl::Status WriteNewFile(const std::string& path, const std::string& text, mode_t mode) {
  unlink(path.c_str());
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return ErrnoToStatus(errno, "create " + path);
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int err = errno;
  close(fd);
  return ok ? absl::OkStatus() : ErrnoToStatus(err, "write " + path);
}

// True when `mnt` is a mount point (its device differs from its parent's). A FUSE mount whose
// daemon died answers ENOTCONN, which counts as mounted.
bool Mounted(const std::string& mnt) {
  struct stat parent {
  }, self{};
  if (stat(Dirname(mnt).c_str(), &parent) != 0) return false;
  if (stat(mnt.c_str(), &self) != 0) return errno == ENOTCONN;
  return self.st_dev != parent.st_dev;
}

bool ProcessRuns(pid_t pid, const std::string& needle) {
  if (pid <= 1) return false;
  absl::StatusOr<std::string> stat = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok() || absl::StrContains(*stat, ") Z ")) return false;
  absl::StatusOr<std::string> cmdline = ReadSmallFile(absl::StrCat("/proc/", pid, "/cmdline"));
  return cmdline.ok() && absl::StrContains(*cmdline, needle);
}

std::string LogTail(const std::string& path) {
  absl::StatusOr<std::string> log = ReadSmallFile(path);
  if (!log.ok() || log->empty()) return "no output";
  std::string tail = log->size() > 400 ? log->substr(log->size() - 400) : *log;
  return std::string(absl::StripTrailingAsciiWhitespace(tail));
}

// Starts argv in a new session, detached from this process (a grandchild), and returns its pid
// once it runs the program (the pipe closes on exec; a failed exec sends its errno).
absl::StatusOr<pid_t> SpawnDetached(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  const pid_t child = fork();
  if (child < 0) return ErrnoToStatus(errno, "fork");
  if (child == 0) {
    setsid();
    const pid_t grandchild = fork();
    if (grandchild == 0) {
      const int null = open("/dev/null", O_RDONLY);
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(null, 0);
      dup2(out, 1);
      dup2(out, 2);
      execvp(args[0], args.data());
      const int err = errno;
      (void)!write(pipefd[1], &err, sizeof(err));
      _exit(127);
    }
    (void)!write(pipefd[1], &grandchild, sizeof(grandchild));
    _exit(0);
  }
  close(pipefd[1]);
  pid_t pid = -1;
  int exec_errno = 0;
  const ssize_t n = read(pipefd[0], &pid, sizeof(pid));
  const ssize_t m = n == sizeof(pid) ? read(pipefd[0], &exec_errno, sizeof(exec_errno)) : 0;
  close(pipefd[0]);
  waitpid(child, nullptr, 0);
  if (n != sizeof(pid) || pid <= 0) return absl::InternalError("could not start " + argv[0]);
  if (m == sizeof(exec_errno)) return ErrnoToStatus(exec_errno, "run " + argv[0]);
  return pid;
}

}  // namespace

FuseMapper::FuseMapper(FuseMapperOptions options, std::unique_ptr<LoopDevices> devices)
    : options_(std::move(options)), devices_(std::move(devices)) {}

MapperTraits FuseMapper::Traits() const {
  MapperTraits traits;
  traits.required_context = {"monitors"};
  traits.required_secrets = {"userID", "userKey"};
  traits.unmap_refuses_busy = true;  // the loop device is detached only when free
  traits.ceph_images = true;
  traits.lists_only_own = true;  // loop devices of files in its rbd-fuse mounts under options_.dir
  return traits;
}

std::string FuseMapper::DirFor(const MapOptions& o) const {
  const ImageSpec& s = o.image;
  return absl::StrFormat(
      "%s/%s-%016x", options_.dir, s.image.substr(0, 48),
      StableHash64(absl::StrCat(o.monitors, "\n", s.pool, "/", s.rados_namespace, "/", s.image)));
}

std::optional<FuseMapper::Mapping> FuseMapper::MappingOf(const std::string& backing_file) const {
  for (const std::string& root : {options_.dir, CanonicalPath(options_.dir)}) {
    absl::string_view rest = backing_file;
    if (!absl::ConsumePrefix(&rest, root + "/")) continue;
    const size_t slash = rest.find('/');
    if (slash == absl::string_view::npos) continue;
    absl::string_view file = rest.substr(slash + 1);
    if (!absl::ConsumePrefix(&file, "mnt/") || absl::StrContains(file, "/")) continue;
    std::optional<Mapping> m = MappingIn(absl::StrCat(options_.dir, "/", rest.substr(0, slash)));
    if (m && m->image.image == file) return m;
  }
  return std::nullopt;
}

std::optional<FuseMapper::Mapping> FuseMapper::MappingIn(const std::string& dir) const {
  absl::StatusOr<std::string> text = ReadSmallFile(dir + "/image");
  if (!text.ok()) return std::nullopt;
  const auto doc = nlohmann::json::parse(*text, nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  Mapping m;
  m.dir = dir;
  m.image = ImageSpec(doc.value("pool", ""), doc.value("image", ""), doc.value("namespace", ""));
  absl::StatusOr<std::string> pid = ReadSmallFile(dir + "/pid");
  if (!pid.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid), &m.pid)) m.pid = -1;
  return m;
}

std::optional<FuseMapper::Mapping> FuseMapper::MappingAttachedTo(const LoopInfo& info) const {
  if (info.diskseq == 0) return std::nullopt;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.dir, ec)) {
    const std::string dir = entry.path().string();
    absl::StatusOr<std::string> text = ReadSmallFile(dir + "/loop");
    if (!text.ok()) continue;
    const auto doc = nlohmann::json::parse(*text, nullptr, false);
    if (!doc.is_object() || doc.value("device", "") != info.device ||
        doc.value("major", 0u) != info.major || doc.value("minor", 0u) != info.minor ||
        doc.value("diskseq", uint64_t{0}) != info.diskseq) {
      continue;
    }
    return MappingIn(dir);
  }
  return std::nullopt;
}

bool FuseMapper::Alive(const Mapping& m) const { return ProcessRuns(m.pid, m.dir + "/mnt"); }

absl::StatusOr<pid_t> FuseMapper::StartRbdFuse(const std::string& dir, const MapOptions& o) {
  RETURN_IF_ERROR(MakeDirs(dir + "/mnt", 0700));
  RETURN_IF_ERROR(WriteNewFile(
      dir + "/image",
      nlohmann::json{
          {"pool", o.image.pool}, {"namespace", o.image.rados_namespace}, {"image", o.image.image}}
          .dump(),
      0600));
  RETURN_IF_ERROR(
      WriteNewFile(dir + "/ceph.conf",
                   absl::StrCat("[global]\nmon host = ", o.monitors, "\nkeyfile = ", dir,
                                "/key\nadmin socket =\nlog file =\nclient mount timeout = ",
                                options_.timeout.count(), "\n"),
                   0600));
  RETURN_IF_ERROR(WriteNewFile(dir + "/key", o.key + "\n", 0600));
  std::vector<std::string> argv = {options_.rbd_fuse_program,
                                   dir + "/mnt",
                                   "-f",
                                   "-c",
                                   dir + "/ceph.conf",
                                   "--id",
                                   o.user,
                                   "-p",
                                   o.image.pool,
                                   "-r",
                                   o.image.image,
                                   "-o",
                                   "attr_timeout=0,entry_timeout=0"};
  if (!o.image.rados_namespace.empty()) {
    argv.insert(argv.end(), {"--namespace", o.image.rados_namespace});
  }
  ASSIGN_OR_RETURN(const pid_t pid, SpawnDetached(argv, dir + "/rbd-fuse.log"));
  RETURN_IF_ERROR(WriteNewFile(dir + "/pid", absl::StrCat(pid, "\n"), 0600));
  return pid;
}

absl::StatusOr<MappedDevice> FuseMapper::Map(const MapOptions& o) {
  const std::string what = absl::StrCat("mapping image ", o.image.ToString(), " with rbd-fuse");
  if (o.monitors.empty() || o.user.empty() || o.key.empty()) {
    return absl::InvalidArgumentError(what + ": needs monitors, userID and userKey");
  }
  const std::string dir = DirFor(o);
  Mapping m{dir, o.image, -1};
  if (absl::StatusOr<std::string> pid = ReadSmallFile(dir + "/pid"); pid.ok()) {
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid), &m.pid)) m.pid = -1;
  }
  if (fs::exists(dir)) RETURN_IF_ERROR(Annotate(StopRbdFuse(m), what + ": an earlier attempt"));
  absl::StatusOr<pid_t> pid = StartRbdFuse(dir, o);
  m.pid = pid.ok() ? *pid : -1;
  const std::string file = dir + "/mnt/" + o.image.image;
  absl::Status ready = pid.status();
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  while (ready.ok()) {
    struct stat st {};
    if (Mounted(dir + "/mnt") && stat(file.c_str(), &st) == 0) break;
    if (Mounted(dir + "/mnt") && errno == ENOENT) {
      ready = absl::NotFoundError(absl::StrCat("image ", o.image.ToString(), " does not exist"));
    } else if (!Alive(m)) {
      ready =
          absl::UnavailableError(absl::StrCat("rbd-fuse exited: ", LogTail(dir + "/rbd-fuse.log")));
    } else if (std::chrono::steady_clock::now() > deadline) {
      ready = absl::UnavailableError("rbd-fuse did not connect in time");
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  unlink((dir + "/key").c_str());  // rbd-fuse has read it (or never will)
  absl::StatusOr<std::string> dev =
      ready.ok() ? devices_->Attach(file, o.read_only) : absl::StatusOr<std::string>(ready);
  absl::StatusOr<LoopInfo> info = dev.ok() ? RecordAttachment(dir, *dev) : dev.status();
  if (info.ok()) {
    Logger("fuse")->info("mapped {} at {} (rbd-fuse pid {})", o.image.ToString(), *dev, m.pid);
    return MappedDevice{*dev, info->major, info->minor, o.image};
  }
  absl::Status undo = dev.ok() ? devices_->Detach(*dev, file) : absl::OkStatus();
  if (undo.ok()) undo = StopRbdFuse(m);
  absl::Status st = Annotate(info.status(), what);
  return undo.ok() ? st : Annotate(st, absl::StrCat("cleanup failed too: ", undo.message()));
}

absl::StatusOr<LoopInfo> FuseMapper::RecordAttachment(const std::string& dir,
                                                      const std::string& dev) {
  ASSIGN_OR_RETURN(const LoopInfo info, devices_->Get(dev));
  RETURN_IF_ERROR(WriteNewFile(
      dir + "/loop",
      nlohmann::json{
          {"device", dev}, {"major", info.major}, {"minor", info.minor}, {"diskseq", info.diskseq}}
          .dump(),
      0600));
  return info;
}

absl::Status FuseMapper::StopRbdFuse(const Mapping& m) {
  const std::string mnt = m.dir + "/mnt";
  if (Mounted(mnt) && umount2(mnt.c_str(), UMOUNT_NOFOLLOW) != 0) {
    return ErrnoToStatus(errno, "unmount " + mnt);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int sig : {0, SIGTERM, SIGKILL}) {
    if (sig != 0 && Alive(m)) kill(m.pid, sig);
    while (Alive(m) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (Alive(m)) return absl::InternalError(absl::StrCat("rbd-fuse (pid ", m.pid, ") did not exit"));
  if (Mounted(mnt)) return absl::InternalError(mnt + " is still mounted");
  std::error_code ec;
  fs::remove_all(m.dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("remove ", m.dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status FuseMapper::Unmap(const MappedDevice& device) {
  // The one device, not a listing: the caller has just listed (Find/List).
  absl::StatusOr<LoopInfo> info = devices_->Get(device.path);
  if (info.ok()) {
    std::optional<Mapping> m = MappingOf(info->backing_file);
    if (!m) m = MappingAttachedTo(*info);  // rbd-fuse died: its file is no longer under dir
    if (!m) return absl::OkStatus();       // not (any more) ours
    RETURN_IF_ERROR(devices_->Detach(device.path, info->backing_file));
    RETURN_IF_ERROR(StopRbdFuse(*m));
    Logger("fuse")->info("unmapped {} ({})", device.path, m->image.ToString());
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(info.status())) return info.status();
  if (device.image.image.empty()) return absl::OkStatus();
  // The device is gone; its rbd-fuse may be left (rare): only then are all devices listed.
  ASSIGN_OR_RETURN(const std::vector<LoopInfo> all, devices_->List());
  return StopOrphans(device.image, all);
}

absl::Status FuseMapper::StopOrphans(const ImageSpec& image,
                                     const std::vector<LoopInfo>& attached) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.dir, ec)) {
    const std::string file = entry.path().string() + "/mnt/" + image.image;
    std::optional<Mapping> m = MappingOf(file);
    if (!m || !(m->image == image)) continue;
    const bool in_use = std::any_of(attached.begin(), attached.end(), [&](const LoopInfo& info) {
      if (info.backing_file == file || info.backing_file == CanonicalPath(file)) return true;
      std::optional<Mapping> by_record = MappingAttachedTo(info);
      return by_record.has_value() && by_record->dir == m->dir;
    });
    if (in_use) continue;
    RETURN_IF_ERROR(StopRbdFuse(*m));
    Logger("fuse")->info("stopped the rbd-fuse of {} that no device used any more",
                         image.ToString());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<MappedDevice>> FuseMapper::List() {
  ASSIGN_OR_RETURN(const std::vector<LoopInfo> all, devices_->List());
  std::vector<MappedDevice> out;
  for (const LoopInfo& info : all) {
    std::optional<Mapping> m = MappingOf(info.backing_file);
    if (m && Alive(*m)) out.push_back(MappedDevice{info.device, info.major, info.minor, m->image});
  }
  return out;
}

absl::Status FuseMapper::RefreshCapacity(const MappedDevice& device) {
  ASSIGN_OR_RETURN(const std::vector<LoopInfo> all, devices_->List());
  for (const LoopInfo& info : all) {
    if (info.device != device.path) continue;
    struct stat st {};
    if (stat(info.backing_file.c_str(), &st) != 0) {  // asks rbd-fuse for the current size
      return ErrnoToStatus(errno, "stat " + info.backing_file);
    }
    return devices_->SetCapacity(device.path);
  }
  return absl::NotFoundError(device.path + " is not a fuse mapping of this plugin");
}

}  // namespace rbdcsi
