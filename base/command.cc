#include "base/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/fault_point.h"
#include "base/fd.h"
#include "base/status.h"

extern char** environ;

namespace rbdcsi {
namespace {

class RealCommandRunner : public CommandRunner {
 public:
  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                    const CommandOptions& options) override;
};

// Pipes are created with O_CLOEXEC so concurrent spawns never inherit each other's ends.
absl::Status MakePipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "creating a pipe");
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  return absl::OkStatus();
}

std::vector<std::string> BuildEnv(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view key = entry.substr(0, entry.find('='));
    if (extra.count(std::string(key)) == 0) env.emplace_back(entry);
  }
  for (const auto& [k, v] : extra) env.push_back(absl::StrCat(k, "=", v));
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Waits until the child `pid` has exited (not reaped) or the deadline passed; false on the latter.
bool WaitForExit(pid_t pid, std::chrono::steady_clock::time_point deadline) {
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (pidfd.valid()) {
      pollfd p{pidfd.get(), POLLIN, 0};
      const int n = poll(&p, 1, static_cast<int>(left.count()));
      if (n > 0) return true;
      if (n == 0) return false;
      if (errno != EINTR) return true;  // let waitpid() decide
    } else {
      siginfo_t info{};
      if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
        return true;
      }
      if (info.si_pid == pid) return true;
      usleep(5000);  // kernels before 5.3 have no pidfds
    }
  }
}

// The executable `name` names: itself when it has a '/', else the first match in $PATH.
std::string FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

[[noreturn]] void ChildFail(int status_fd, int err) {
  ssize_t unused = write(status_fd, &err, sizeof err);
  (void)unused;
  _exit(127);
}

// In the forked child, before exec: only async-signal-safe calls, nothing allocated.
[[noreturn]] void ExecChild(pid_t parent, int status_fd, int in, int out, int err,
                            const char* program, char* const* args, char* const* env) {
  // Its own process group, so a timeout kills whatever it started too; and SIGKILL when the
  // thread that started it dies, so no child (a slow `rbd map`) outlives a killed plugin.
  setpgid(0, 0);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(status_fd, errno);
  if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) ChildFail(status_fd, errno);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT}) signal(sig, SIG_DFL);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
  execve(program, args, env);
  ChildFail(status_fd, errno);
}

// Starts the child; NOT_FOUND when the program does not exist, errno otherwise.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& extra_env, int in, int out,
                            int err) {
  const std::string program = FindProgram(argv[0]);
  if (program.empty()) return absl::NotFoundError(absl::StrCat("program not found: ", argv[0]));
  std::vector<std::string> args = argv;
  std::vector<std::string> env = BuildEnv(extra_env);
  std::vector<char*> c_args = CStrings(args);
  std::vector<char*> c_env = CStrings(env);
  UniqueFd status_r, status_w;
  RETURN_IF_ERROR(MakePipe(status_r, status_w));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    ExecChild(parent, status_w.get(), in, out, err, program.c_str(), c_args.data(), c_env.data());
  }
  if (pid < 0) return ErrnoToStatus(errno, absl::StrCat("starting ", argv[0]));
  status_w.reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(status_r.get(), &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {  // exec closed the pipe: the program runs
    FaultPoint(absl::StrCat("run:", argv[0]));
    return pid;
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (child_errno == ENOENT) {
    return absl::NotFoundError(absl::StrCat("program not found: ", argv[0]));
  }
  return ErrnoToStatus(child_errno, absl::StrCat("starting ", argv[0]));
}

// Reaps a child that was sent SIGKILL. A process stuck in the kernel (uninterruptible sleep)
// may take long to die: after a short wait it is left to a detached thread to reap, so the
// caller's time stays bounded.
void ReapKilled(pid_t pid) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int wstatus = 0;
  while (std::chrono::steady_clock::now() < give_up) {
    const pid_t got = waitpid(pid, &wstatus, WNOHANG);
    if (got == pid || (got < 0 && errno != EINTR)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::thread([pid] {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }).detach();
}

absl::StatusOr<CommandResult> RealCommandRunner::Run(const std::vector<std::string>& argv,
                                                     const CommandOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command line");
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  RETURN_IF_ERROR(MakePipe(in_r, in_w));
  RETURN_IF_ERROR(MakePipe(out_r, out_w));
  RETURN_IF_ERROR(MakePipe(err_r, err_w));

  ASSIGN_OR_RETURN(const pid_t pid, Spawn(argv, options.env, in_r.get(), out_w.get(), err_w.get()));
  in_r.reset();
  out_w.reset();
  err_w.reset();

  CommandResult result;
  size_t written = 0;
  if (options.stdin_data.empty()) in_w.reset();
  fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  bool timed_out = false;
  while (out_r.valid() || err_r.valid()) {
    pollfd fds[3] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}, {in_w.get(), POLLOUT, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = poll(fds, 3, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    char buf[8192];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof(buf));
      if (got > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        (i == 0 ? out_r : err_r).reset();
      }
    }
    if (fds[2].fd >= 0 && fds[2].revents != 0) {
      ssize_t put = write(in_w.get(), options.stdin_data.data() + written,
                          options.stdin_data.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if (put < 0 && errno != EAGAIN && errno != EINTR) in_w.reset();
      if (written == options.stdin_data.size()) in_w.reset();
    }
  }
  // The child may close its output and live on (a daemon, or a hang after printing); the
  // deadline bounds the wait for its exit too.
  if (!timed_out) timed_out = !WaitForExit(pid, deadline);
  if (timed_out) {
    kill(-pid, SIGKILL);  // the child's whole process group
    ReapKilled(pid);
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " did not finish within ", options.timeout.count(), " ms"));
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(wstatus)) {
    result.exit_code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    result.exit_code = 128 + WTERMSIG(wstatus);
  }
  return result;
}

}  // namespace

std::unique_ptr<CommandRunner> NewRealCommandRunner() {
  return std::make_unique<RealCommandRunner>();
}

std::string FormatArgv(const std::vector<std::string>& argv) { return absl::StrJoin(argv, " "); }

}  // namespace rbdcsi
