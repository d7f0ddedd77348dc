#include "base/forked_child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

int LeftMs(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

// Appends what `fd` (non-blocking) holds now; false once it reached end of file or failed.
bool Drain(int fd, std::string* out) {
  char buffer[8192];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof(buffer));
    if (got > 0) {
      out->append(buffer, static_cast<size_t>(got));
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      return got < 0 && errno == EAGAIN;
    }
  }
}

// Reads the child's output until it closes it or exits, then waits for its exit; false when the
// deadline passed first. Once the child has exited its output is complete even if the pipe is
// not at end of file (a child forked meanwhile by another thread may hold its write end too).
bool CollectOutput(pid_t pid, int fd, std::chrono::steady_clock::time_point deadline,
                   std::string* out) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // -1: poll ignores it
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  for (bool open = true; open;) {
    const int left = LeftMs(deadline);
    if (left == 0) return false;
    pollfd fds[2] = {{fd, POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
    const int n = ::poll(fds, 2, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // WaitForExit decides
    const bool exited = fds[1].revents != 0;
    open = Drain(fd, out) && !exited;
  }
  return WaitForExit(pid, deadline);
}

}  // namespace

bool DieWithParent(pid_t parent) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return false;
  if (::getppid() != parent) {  // the parent died before prctl took effect
    errno = ESRCH;
    return false;
  }
  return true;
}

bool WaitForExit(pid_t pid, std::chrono::steady_clock::time_point deadline) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  for (;;) {
    const int left = LeftMs(deadline);
    if (left == 0) return false;
    if (pidfd.valid()) {
      pollfd p{pidfd.get(), POLLIN, 0};
      const int n = ::poll(&p, 1, left);
      if (n > 0) return true;
      if (n == 0) return false;
      if (errno != EINTR) return true;  // let waitpid() decide
    } else {
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
        return true;
      }
      if (info.si_pid == pid) return true;
      ::usleep(5000);  // kernels before 5.3 have no pidfds
    }
  }
}

void KillAndReap(pid_t target, pid_t pid) {
  ::kill(target, SIGKILL);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int wstatus = 0;
  while (std::chrono::steady_clock::now() < give_up) {
    const pid_t got = ::waitpid(pid, &wstatus, WNOHANG);
    if (got == pid || (got < 0 && errno != EINTR)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::thread([pid] {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }).detach();
}

absl::StatusOr<ForkedChildResult> RunForkedChild(std::string_view what,
                                                 std::chrono::milliseconds timeout,
                                                 const std::function<void(int output_fd)>& body) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("cannot create a pipe for ", AsAbsl(what)));
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, absl::StrCat("cannot fork for ", AsAbsl(what)));
  if (pid == 0) {
    if (!DieWithParent(parent)) ::_exit(126);
    body(write_end.get());
    ::_exit(0);
  }
  write_end.reset();
  ForkedChildResult result;
  if (!CollectOutput(pid, read_end.get(), deadline, &result.output)) {
    KillAndReap(pid, pid);
    return absl::DeadlineExceededError(absl::StrCat(AsAbsl(what),
                                                    ": the helper process did not finish within ",
                                                    timeout.count(), " ms and was killed"));
  }
  while (::waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

}  // namespace rbdcsi
