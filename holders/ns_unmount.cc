#include "holders/ns_unmount.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/forked_child.h"
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

// A mount point as the child resolves it: its parent directory, then its last component.
struct Target {
  std::string path;  // without trailing slashes
  std::string parent;
  std::string name;
};

// INVALID_ARGUMENT for a relative path or "/".
absl::StatusOr<Target> SplitMountPoint(const std::string& mount_point) {
  Target t;
  t.path = mount_point;
  while (t.path.size() > 1 && t.path.back() == '/') t.path.pop_back();
  const size_t slash = t.path.rfind('/');
  t.name = slash == std::string::npos ? "" : t.path.substr(slash + 1);
  if (t.path.empty() || t.path[0] != '/' || t.name.empty() || t.name == "." || t.name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("refusing to unmount \"", mount_point,
                     "\" in another mount namespace: not an absolute path below /"));
  }
  t.parent = slash == 0 ? "/" : t.path.substr(0, slash);
  return t;
}

// The mount namespace of the task, opened; FAILED_PRECONDITION when it is not `ns_inode`. The
// descriptor pins the namespace: once its inode matches, a reused pid cannot redirect the
// unmount.
absl::StatusOr<UniqueFd> OpenNamespace(pid_t pid, pid_t tid, uint64_t ns_inode,
                                       const std::string& where) {
  const std::string ns_file = tid == 0 ? absl::StrCat("/proc/", pid, "/ns/mnt")
                                       : absl::StrCat("/proc/", pid, "/task/", tid, "/ns/mnt");
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
        absl::StrCat("not unmounting ", where, ": that task is now in mount namespace ", st.st_ino,
                     " (the process exited and its pid was reused, or it moved)"));
  }
  return ns;
}

// What the child's answer means for the caller.
absl::Status Explain(const ChildResult& result, const std::string& where, const std::string& task,
                     uint64_t ns_inode, const std::string& parent, int mount_id) {
  switch (result.step) {
    case Step::kDone:
      return absl::OkStatus();
    case Step::kEnterNamespace:
      return ErrnoToStatus(result.err,
                           absl::StrCat("cannot enter mount namespace ", ns_inode, " of ", task));
    case Step::kOpenParent:
      return ErrnoToStatus(result.err,
                           absl::StrCat("cannot unmount ", where, ": opening ", parent, " there"));
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

class RealNamespaceUnmounter : public NamespaceUnmounter {
 public:
  explicit RealNamespaceUnmounter(std::chrono::milliseconds timeout) : timeout_(timeout) {}

  absl::Status Unmount(pid_t pid, pid_t tid, uint64_t ns_inode, int mount_id,
                       const std::string& mount_point) override {
    ASSIGN_OR_RETURN(const Target target, SplitMountPoint(mount_point));
    const std::string task =
        tid == 0 ? absl::StrCat("pid ", pid) : absl::StrCat("thread ", tid, " of pid ", pid);
    const std::string where =
        absl::StrCat(target.path, " in mount namespace ", ns_inode, " of ", task);
    ASSIGN_OR_RETURN(const UniqueFd ns, OpenNamespace(pid, tid, ns_inode, where));
    // setns(CLONE_NEWNS) is refused to a multi-threaded process; the forked child has one thread.
    const int ns_fd = ns.get();
    const char* parent_c = target.parent.c_str();
    const char* name_c = target.name.c_str();
    ASSIGN_OR_RETURN(const ForkedChildResult child,
                     RunForkedChild(absl::StrCat("unmounting ", where), timeout_, [&](int out) {
                       UnmountInChild(ns_fd, out, parent_c, name_c, mount_id);
                     }));
    ChildResult result;
    if (child.output.size() != sizeof(result)) {
      return absl::InternalError(
          absl::StrCat("cannot unmount ", where, ": the helper process ended without an answer",
                       WIFSIGNALED(child.wait_status)
                           ? absl::StrCat(" (killed by signal ", WTERMSIG(child.wait_status), ")")
                           : std::string()));
    }
    std::memcpy(&result, child.output.data(), sizeof(result));
    return Explain(result, where, task, ns_inode, target.parent, mount_id);
  }

 private:
  const std::chrono::milliseconds timeout_;
};

}  // namespace

std::unique_ptr<NamespaceUnmounter> NewRealNamespaceUnmounter(std::chrono::milliseconds timeout) {
  return std::make_unique<RealNamespaceUnmounter>(timeout);
}

}  // namespace rbdcsi
