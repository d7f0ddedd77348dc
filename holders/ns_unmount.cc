#include "holders/ns_unmount.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

// What the child reports through its pipe: the step that failed (kDone on success), its errno,
// and for kOtherMount the id of the mount it found instead.
enum class Step : int {
  kDone,
  kEnterNamespace,
  kOpenParent,
  kStat,
  kNoMountId,
  kOtherMount,
  kUnmount,
};

struct ChildResult {
  Step step = Step::kDone;
  int err = 0;
  uint64_t found_mount_id = 0;
};

[[noreturn]] void Report(int fd, ChildResult result) {
  // A short write leaves the parent with an incomplete result, which it reports as such.
  [[maybe_unused]] const ssize_t n = ::write(fd, &result, sizeof(result));
  ::_exit(result.step == Step::kDone ? 0 : 1);
}

// Runs in the forked child: a copy of one thread of a multi-threaded process, so only
// async-signal-safe calls, no allocation, no locks. Never returns.
//
// The path is resolved in two parts so that what is checked is what is unmounted: the parent
// directory once (it may cross symlinks the container planted; the mount id check below catches
// any redirection), then the last component relative to it, without following a symlink. A
// process in that namespace cannot rename or replace that component while it is a mount point
// there (EBUSY), so between the check and umount2 only a mount or unmount on that very path,
// which needs CAP_SYS_ADMIN over the namespace, could change the answer.
[[noreturn]] void UnmountInChild(int ns_fd, int result_fd, const char* parent, const char* name,
                                 int mount_id) {
  if (::setns(ns_fd, CLONE_NEWNS) != 0) Report(result_fd, {Step::kEnterNamespace, errno, 0});
  // setns() moved our root and working directory to the namespace's root.
  const int dir = ::open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 || ::fchdir(dir) != 0) Report(result_fd, {Step::kOpenParent, errno, 0});
  struct statx st;
  if (::statx(dir, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_DONT_SYNC, STATX_MNT_ID,
              &st) != 0) {
    Report(result_fd, {Step::kStat, errno, 0});
  }
  // Asking only for STATX_MNT_ID (not STATX_MNT_ID_UNIQUE) yields the old, mountinfo-style id.
  if ((st.stx_mask & STATX_MNT_ID) == 0) Report(result_fd, {Step::kNoMountId, 0, 0});
  if (st.stx_mnt_id != static_cast<uint64_t>(mount_id)) {
    Report(result_fd, {Step::kOtherMount, 0, st.stx_mnt_id});
  }
  if (::umount2(name, UMOUNT_NOFOLLOW) != 0) Report(result_fd, {Step::kUnmount, errno, 0});
  Report(result_fd, {Step::kDone, 0, 0});
}

class RealNamespaceUnmounter : public NamespaceUnmounter {
 public:
  absl::Status Unmount(pid_t pid, pid_t tid, uint64_t ns_inode, int mount_id,
                       const std::string& mount_point) override {
    std::string path = mount_point;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    const size_t slash = path.rfind('/');
    const std::string name = slash == std::string::npos ? "" : path.substr(slash + 1);
    if (path.empty() || path[0] != '/' || name.empty() || name == "." || name == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("refusing to unmount \"", mount_point,
                       "\" in another mount namespace: not an absolute path below /"));
    }
    const std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    const std::string task =
        tid == 0 ? absl::StrCat("pid ", pid) : absl::StrCat("thread ", tid, " of pid ", pid);
    const std::string where = absl::StrCat(path, " in mount namespace ", ns_inode, " of ", task);

    const std::string ns_file = tid == 0 ? absl::StrCat("/proc/", pid, "/ns/mnt")
                                         : absl::StrCat("/proc/", pid, "/task/", tid, "/ns/mnt");
    // The descriptor pins the namespace: once its inode matches, a reused pid cannot redirect
    // the unmount.
    UniqueFd ns(::open(ns_file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid()) {
      return ErrnoToStatus(errno, absl::StrCat("cannot unmount ", where, ": opening ", ns_file));
    }
    struct stat st;
    if (::fstat(ns.get(), &st) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("cannot unmount ", where, ": fstat ", ns_file));
    }
    if (static_cast<uint64_t>(st.st_ino) != ns_inode) {
      return absl::FailedPreconditionError(
          absl::StrCat("not unmounting ", where, ": that task is now in mount namespace ",
                       st.st_ino, " (the process exited and its pid was reused, or it moved)"));
    }

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "cannot create a pipe");
    UniqueFd read_end(pipe_fds[0]);
    UniqueFd write_end(pipe_fds[1]);
    // setns(CLONE_NEWNS) is refused to a multi-threaded process; the forked child has one thread.
    const pid_t self = ::getpid();
    const pid_t child = ::fork();
    if (child < 0) {
      return ErrnoToStatus(errno, absl::StrCat("cannot fork to unmount ", where));
    }
    if (child == 0) {
      // Dies with the plugin, like every child it starts (base/command.h).
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != self) ::_exit(6);
      UnmountInChild(ns.get(), write_end.get(), parent.c_str(), name.c_str(), mount_id);
    }
    write_end.reset();
    ChildResult result;
    size_t got = 0;
    while (got < sizeof(result)) {
      const ssize_t n =
          ::read(read_end.get(), reinterpret_cast<char*>(&result) + got, sizeof(result) - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    int wstatus = 0;
    while (::waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (got < sizeof(result)) {
      return absl::InternalError(absl::StrCat(
          "cannot unmount ", where, ": the helper process ended without an answer",
          WIFSIGNALED(wstatus) ? absl::StrCat(" (killed by signal ", WTERMSIG(wstatus), ")")
                               : std::string()));
    }
    switch (result.step) {
      case Step::kDone:
        return absl::OkStatus();
      case Step::kEnterNamespace:
        return ErrnoToStatus(result.err,
                             absl::StrCat("cannot enter mount namespace ", ns_inode, " of ", task));
      case Step::kOpenParent:
        return ErrnoToStatus(
            result.err, absl::StrCat("cannot unmount ", where, ": opening ", parent, " there"));
      case Step::kStat:
        return ErrnoToStatus(result.err, absl::StrCat("cannot unmount ", where, ": statx"));
      case Step::kNoMountId:
        return absl::FailedPreconditionError(
            absl::StrCat("not unmounting ", where,
                         ": the kernel does not report mount ids through statx (needs Linux "
                         "5.8), so the mount cannot be verified"));
      case Step::kOtherMount:
        return absl::FailedPreconditionError(
            absl::StrCat("not unmounting ", where, ": the topmost mount there is mount ",
                         result.found_mount_id, ", not mount ", mount_id));
      case Step::kUnmount:
        return ErrnoToStatus(result.err, absl::StrCat("cannot unmount ", where));
    }
    return absl::InternalError(absl::StrCat("cannot unmount ", where, ": garbled helper answer"));
  }
};

}  // namespace

std::unique_ptr<NamespaceUnmounter> NewRealNamespaceUnmounter() {
  return std::make_unique<RealNamespaceUnmounter>();
}

}  // namespace rbdcsi
