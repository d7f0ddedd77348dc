#include "bench/synthetic_node.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

void* Park(void*) {
  while (true) ::pause();
  return nullptr;
}

// Closes every descriptor from 3 up except `keep1` and `keep2` (-1 for none).
void CloseAllExcept(int keep1, int keep2) {
  int keep[2] = {std::min(keep1, keep2), std::max(keep1, keep2)};
  unsigned from = 3;
  for (const int k : keep) {
    if (k < static_cast<int>(from)) continue;
    if (static_cast<unsigned>(k) > from) ::close_range(from, static_cast<unsigned>(k) - 1, 0);
    from = static_cast<unsigned>(k) + 1;
  }
  ::close_range(from, ~0U, 0);
}

// Child body: die with the parent, take a name, drop inherited descriptors, run `setup`, start
// the extra threads, send one readiness byte ('1' ok, '0' failed), then park.
[[noreturn]] void RunChild(pid_t parent, const std::string& name,
                           const std::function<bool()>& setup, int threads, int ready_fd,
                           int keep_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  ::prctl(PR_SET_NAME, name.c_str());
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
  }
  CloseAllExcept(ready_fd, keep_fd);
  bool ok = setup();
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  for (int i = 1; ok && i < threads; ++i) {
    pthread_t t;
    ok = pthread_create(&t, &attr, Park, nullptr) == 0;
  }
  const char byte = ok ? '1' : '0';
  if (::write(ready_fd, &byte, 1) != 1) ::_exit(1);
  ::close(ready_fd);
  Park(nullptr);
  ::_exit(0);
}

// Forks one child running RunChild. `keep_fd` stays open for `setup` (a namespace to join).
absl::StatusOr<pid_t> Spawn(const std::string& name, const std::function<bool()>& setup,
                            int threads, int ready_fd, int keep_fd = -1) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) RunChild(parent, name, setup, threads, ready_fd, keep_fd);
  return pid;
}

absl::Status WaitReady(int ready_fd, int count) {
  int ready = 0;
  char buffer[256];
  while (ready < count) {
    const ssize_t n = ::read(ready_fd, buffer,
                             std::min<size_t>(sizeof(buffer), static_cast<size_t>(count - ready)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError("a synthetic process died before it was ready");
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] != '1') return absl::InternalError("a synthetic process failed to set up");
    }
    ready += static_cast<int>(n);
  }
  return absl::OkStatus();
}

bool UnsharePrivate() {
  return ::unshare(CLONE_NEWNS) == 0 &&
         ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
}

}  // namespace

absl::StatusOr<pid_t> ForkHolder(const std::string& name, const std::function<bool()>& setup) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  absl::StatusOr<pid_t> pid = Spawn(name, setup, 1, write_end.get());
  if (!pid.ok()) return pid.status();
  write_end.reset();
  const absl::Status ready = WaitReady(read_end.get(), 1);
  if (!ready.ok()) {
    KillAndReap(*pid);
    return Annotate(ready, name);
  }
  return *pid;
}

void KillAndReap(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

absl::Status SyntheticNode::AddMounts(const std::string& dir, int count) {
  const std::string source = dir + "/source";
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoToStatus(errno, dir);
  if (::mkdir(source.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoToStatus(errno, source);
  for (int i = 0; i < count; ++i) {
    const std::string target = absl::StrCat(dir, "/m", i);
    if (::mkdir(target.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoToStatus(errno, target);
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("bind mount on ", target));
    }
  }
  return absl::OkStatus();
}

absl::Status SyntheticNode::StartProcesses(const NodeShape& shape) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  const int leaders = std::min(shape.namespaces, shape.processes);
  for (int i = 0; i < leaders; ++i) {
    ASSIGN_OR_RETURN(const pid_t pid,
                     Spawn("bench-pod", UnsharePrivate, shape.threads, write_end.get()));
    pids_.push_back(pid);
  }
  RETURN_IF_ERROR(WaitReady(read_end.get(), leaders));
  // The others join the leaders' namespaces, round robin.
  std::vector<UniqueFd> namespaces;
  for (int i = 0; i < leaders; ++i) {
    const std::string path = absl::StrCat("/proc/", pids_[static_cast<size_t>(i)], "/ns/mnt");
    namespaces.emplace_back(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!namespaces.back().valid()) return ErrnoToStatus(errno, path);
  }
  for (int i = leaders; i < shape.processes; ++i) {
    const int ns = leaders > 0 ? namespaces[static_cast<size_t>(i % leaders)].get() : -1;
    ASSIGN_OR_RETURN(const pid_t pid, Spawn(
                                          "bench-app",
                                          [ns] {
                                            const bool ok = ns < 0 || ::setns(ns, CLONE_NEWNS) == 0;
                                            if (ns >= 0) ::close(ns);
                                            return ok;
                                          },
                                          shape.threads, write_end.get(), ns));
    pids_.push_back(pid);
  }
  // Namespace descriptors held here would pin the namespaces: close them before measuring.
  namespaces.clear();
  return WaitReady(read_end.get(), shape.processes - leaders);
}

void SyntheticNode::Stop() {
  for (const pid_t pid : pids_) ::kill(pid, SIGKILL);
  for (const pid_t pid : pids_) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  pids_.clear();
}

}  // namespace rbdcsi
