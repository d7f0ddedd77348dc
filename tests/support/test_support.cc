#include "tests/support/test_support.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "mounter/mountinfo.h"

extern char** environ;

namespace rbdcsi {

TempDir::TempDir(const std::string& tag) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/rbdcsi-" + tag + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {

// The executable `name` names, looked up in $PATH like execvp does; "" when there is none.
std::string FindProgram(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return name;
  const char* env = std::getenv("PATH");
  const std::string path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    const std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + name;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

// In the child between fork and exec: async-signal-safe calls only (the test has threads).
[[noreturn]] void ChildFail(int status_fd, int err) {
  while (write(status_fd, &err, sizeof err) < 0 && errno == EINTR) {
  }
  _exit(127);
}

void ChildRedirect(int status_fd, int target, const char* path, int flags) {
  const int fd = open(path, flags | O_CLOEXEC, 0644);
  if (fd < 0) ChildFail(status_fd, errno);
  if (fd == target) {
    if (fcntl(fd, F_SETFD, 0) != 0) ChildFail(status_fd, errno);
    return;
  }
  if (dup2(fd, target) < 0) ChildFail(status_fd, errno);  // dup2 clears FD_CLOEXEC
  close(fd);
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& output_dir) {
  static int counter = 0;
  const std::string stem = output_dir + "/child" + std::to_string(++counter);
  out_path_ = stem + ".out";
  err_path_ = stem + ".err";
  if (argv.empty()) return;
  // Everything the child needs is prepared here: after fork it may not allocate.
  const std::string program = FindProgram(argv[0]);
  if (program.empty()) return;
  std::vector<std::string> args = argv;
  std::vector<char*> c_args;
  for (auto& a : args) c_args.push_back(a.data());
  c_args.push_back(nullptr);
  // The child reports a failure before or in exec on this pipe; a successful exec closes it.
  int status_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) != 0) return;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    close(status_pipe[0]);
    const int status_fd = status_pipe[1];
    // posix_spawn cannot set this: SIGKILL when the thread that forked us exits.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(status_fd, errno);
    if (getppid() != parent) _exit(127);  // The parent died before prctl took effect.
    ChildRedirect(status_fd, 0, "/dev/null", O_RDONLY);
    ChildRedirect(status_fd, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC);
    ChildRedirect(status_fd, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC);
    execve(program.c_str(), c_args.data(), environ);
    ChildFail(status_fd, errno);
  }
  close(status_pipe[1]);
  if (pid < 0) {
    close(status_pipe[0]);
    return;
  }
  int err = 0;
  ssize_t n;
  do {
    n = read(status_pipe[0], &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  close(status_pipe[0]);
  if (n > 0) {  // exec failed: like posix_spawnp, no child to speak of
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return;
  }
  pid_ = pid;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(10));
  }
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  if (reaped_) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t got = waitpid(pid_, &status, WNOHANG);
    if (got == pid_) {
      reaped_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

ino_t MountNamespaceOf(pid_t pid) {
  struct stat st {};
  if (stat(("/proc/" + std::to_string(pid) + "/ns/mnt").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> StartNamespaceHolder(
    const std::string& propagation, const std::string& script, const std::string& output_dir,
    std::chrono::milliseconds bound) {
  auto holder = std::make_unique<ChildProcess>(
      std::vector<std::string>{"unshare", "--mount", "--propagation", propagation, "sh", "-c",
                               script + "; exec sleep 1000"},
      output_dir);
  const pid_t pid = holder->pid();
  if (pid <= 0) return absl::InternalError("cannot start unshare: " + holder->Stderr());
  const ino_t ours = MountNamespaceOf(getpid());
  const std::string comm = "/proc/" + std::to_string(pid) + "/comm";
  if (!WaitFor([&] { return MountNamespaceOf(pid) != ours && ReadFileOrEmpty(comm) == "sleep\n"; },
               bound)) {
    return absl::DeadlineExceededError("the holder (unshare --propagation " + propagation +
                                       " sh -c '" + script +
                                       "') did not reach its sleep: " + holder->Stderr());
  }
  return holder;
}

bool KillAndWait(ChildProcess& holder, std::chrono::milliseconds bound) {
  holder.Signal(SIGKILL);
  return holder.Wait(bound).has_value();
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string LoopAttribute(const std::string& device, const std::string& attribute) {
  const std::string name = std::filesystem::path(device).filename().string();
  std::string text = ReadFileOrEmpty("/sys/block/" + name + "/loop/" + attribute);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::string LoopAttachment(const std::string& device) {
  const std::string name = std::filesystem::path(device).filename().string();
  if (!std::filesystem::exists("/sys/block/" + name + "/loop/backing_file")) return "";
  std::string seq = ReadFileOrEmpty("/sys/block/" + name + "/diskseq");
  while (!seq.empty() && seq.back() == '\n') seq.pop_back();
  return seq;
}

bool DetachLoopAttachment(const std::string& device, const std::string& diskseq) {
  if (diskseq.empty() || LoopAttachment(device) != diskseq) return true;
  const int fd = open(device.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return LoopAttachment(device) != diskseq;
  if (LoopAttachment(device) == diskseq) ioctl(fd, LOOP_CLR_FD, 0);
  close(fd);  // Since Linux 6.11 the detach happens on this last close.
  return WaitFor([&] { return LoopAttachment(device) != diskseq; }, std::chrono::seconds(2));
}

std::vector<std::string> LoopDevicesBackedUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/block", ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "loop")) continue;
    std::string backing = ReadFileOrEmpty(entry.path().string() + "/loop/backing_file");
    if (absl::StartsWith(backing, dir + "/")) out.push_back("/dev/" + name);
  }
  return out;
}

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  absl::StatusOr<std::vector<MountInfo>> table = ReadMountInfo("/proc/self/mountinfo");
  if (!table.ok()) return {"(cannot read /proc/self/mountinfo: " + table.status().ToString() + ")"};
  for (const MountInfo& m : *table) {
    if (absl::StartsWith(m.mount_point, dir + "/")) out.push_back(m.mount_point);
  }
  return out;
}

bool DetachLoopDeviceBackedBy(const std::string& device, const std::string& backing_file) {
  std::error_code ec;
  const std::string canonical = std::filesystem::weakly_canonical(backing_file, ec).string();
  auto attached_to_ours = [&] {
    const std::string text = LoopAttribute(device, "backing_file");
    return !canonical.empty() && (text == canonical || text == canonical + " (deleted)");
  };
  if (!attached_to_ours()) return true;
  const int fd = open(device.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return !attached_to_ours();
  // Checked on the open descriptor: the number cannot be detached and re-attached to someone
  // else's file meanwhile without this check seeing the other file.
  loop_info64 info{};
  bool ours = ioctl(fd, LOOP_GET_STATUS64, &info) == 0 && attached_to_ours();
  struct stat file;
  if (ours && stat(backing_file.c_str(), &file) == 0) {  // gone: the path has to do
    const dev_t lo_dev = static_cast<dev_t>(info.lo_device);
    ours = info.lo_inode == file.st_ino && major(lo_dev) == major(file.st_dev) &&
           minor(lo_dev) == minor(file.st_dev);
  }
  if (ours) ioctl(fd, LOOP_CLR_FD, 0);  // With other openers this only sets autoclear.
  close(fd);                            // Since Linux 6.11 the detach happens on this last close.
  if (!ours) return !attached_to_ours();
  return WaitFor([&] { return !attached_to_ours(); }, std::chrono::seconds(2));
}

std::string ChildProcess::Stdout() const { return ReadFileOrEmpty(out_path_); }
std::string ChildProcess::Stderr() const { return ReadFileOrEmpty(err_path_); }

bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace rbdcsi
