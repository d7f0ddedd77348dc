#include "base/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/fault_point.h"
#include "base/fd.h"
#include "base/forked_child.h"
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
  if (!DieWithParent(parent)) ChildFail(status_fd, errno);
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
    // And by what it does: "run:rbd device map" (the program's base name, two arguments).
    if (argv.size() >= 3) {
      const std::string_view name(argv[0]);
      FaultPoint(absl::StrCat("run:", AsAbsl(name.substr(name.rfind('/') + 1)), " ", argv[1], " ",
                              argv[2]));
    }
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

// Writes stdin_data to the child and collects its stdout and stderr until it closes both; false
// when the deadline passed first. The descriptors are closed as the child closes its ends.
bool Pump(const std::string& stdin_data, UniqueFd& in_w, UniqueFd& out_r, UniqueFd& err_r,
          std::chrono::steady_clock::time_point deadline, CommandResult& result) {
  size_t written = 0;
  if (stdin_data.empty()) in_w.reset();
  fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  while (out_r.valid() || err_r.valid()) {
    pollfd fds[3] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}, {in_w.get(), POLLOUT, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
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
      ssize_t put = write(in_w.get(), stdin_data.data() + written, stdin_data.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if (put < 0 && errno != EAGAIN && errno != EINTR) in_w.reset();
      if (written == stdin_data.size()) in_w.reset();
    }
  }
  return true;
}

// Reaps the exited child `pid`: its exit code, 128+signal when a signal killed it.
int ReapExitCode(pid_t pid) {
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return 0;
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
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  // The child may close its output and live on (a daemon, or a hang after printing); the
  // deadline bounds the wait for its exit too.
  if (!Pump(options.stdin_data, in_w, out_r, err_r, deadline, result) ||
      !WaitForExit(pid, deadline)) {
    KillAndReap(-pid, pid);  // the child's whole process group
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " did not finish within ", options.timeout.count(), " ms"));
  }
  result.exit_code = ReapExitCode(pid);
  return result;
}

}  // namespace

std::unique_ptr<CommandRunner> NewRealCommandRunner() {
  return std::make_unique<RealCommandRunner>();
}

std::string FormatArgv(const std::vector<std::string>& argv) { return absl::StrJoin(argv, " "); }

}  // namespace rbdcsi
