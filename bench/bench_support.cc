#include "bench/bench_support.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/fd.h"
#include "base/file_util.h"
#include "csi.grpc.pb.h"
#include "mounter/mountinfo.h"

namespace rbdcsi {

double Ms(BenchClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(q * static_cast<double>(values.size()));
  return values[std::min(values.size() - 1, rank)];
}

std::string ReadTrimmed(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  return text.ok() ? std::string(absl::StripAsciiWhitespace(*text)) : "";
}

bool WriteSmallFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  std::fputs(text.c_str(), f);
  return std::fclose(f) == 0;
}

bool UnsharePrivateNamespace() {
  return ::unshare(CLONE_NEWNS) == 0 &&
         ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
}

namespace {
pid_t supervised_worker = 0;
void KillWorker(int) {
  if (supervised_worker > 0) ::kill(supervised_worker, SIGKILL);
}
}  // namespace

int RunSupervised(const std::string& name, const std::function<absl::Status()>& worker,
                  const std::function<void()>& cleanup) {
  std::fflush(stdout);
  supervised_worker = ::fork();
  if (supervised_worker == 0) {
    const absl::Status status = worker();
    if (!status.ok()) std::fprintf(stderr, "%s: %s\n", name.c_str(), status.ToString().c_str());
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(status.ok() ? 0 : 1);
  }
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, KillWorker);
  int wstatus = 0;
  while (::waitpid(supervised_worker, &wstatus, 0) < 0 && errno == EINTR) {
  }
  cleanup();
  if (WIFSIGNALED(wstatus)) {
    std::fprintf(stderr, "%s: interrupted (signal %d); cleaned up\n", name.c_str(),
                 WTERMSIG(wstatus));
    return 1;
  }
  return WEXITSTATUS(wstatus);
}

std::vector<std::string> LoopDevicesUnder(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/block", ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "loop")) continue;
    if (absl::StartsWith(ReadTrimmed(entry.path().string() + "/loop/backing_file"), dir + "/")) {
      found.push_back("/dev/" + name);
    }
  }
  return found;
}

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> found;
  absl::StatusOr<std::vector<MountInfo>> mounts = ReadMountInfo("/proc/self/mountinfo");
  if (!mounts.ok()) return found;
  for (const MountInfo& m : *mounts) {
    if (absl::StartsWith(m.mount_point, dir + "/")) found.push_back(m.mount_point);
  }
  return found;
}

void DetachLoopDevicesUnder(const std::string& dir, const std::string& name) {
  for (const std::string& dev : LoopDevicesUnder(dir)) {
    for (int i = 0; i < 100; ++i) {  // the worker's namespace dies asynchronously
      UniqueFd excl(::open(dev.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
      if (excl.valid()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const std::string backing = ReadTrimmed("/sys/block/" + dev.substr(5) + "/loop/backing_file");
    UniqueFd fd(::open(dev.c_str(), O_RDONLY | O_CLOEXEC));
    const bool ok = absl::StartsWith(backing, dir + "/") && fd.valid() &&
                    ::ioctl(fd.get(), LOOP_CLR_FD, 0) == 0;
    std::fprintf(stderr, "%s: %s (%s) was left attached; %s\n", name.c_str(), dev.c_str(),
                 backing.c_str(), ok ? "detached" : "could not detach it");
  }
}

MemoryFigures ReadMemory(pid_t pid) {
  MemoryFigures m;
  const std::string status = ReadTrimmed("/proc/" + std::to_string(pid) + "/status");
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    auto value = [&](absl::string_view key, long* out) {
      if (!absl::ConsumePrefix(&line, key)) return;
      line = absl::StripAsciiWhitespace(line);
      absl::ConsumeSuffix(&line, " kB");
      (void)absl::SimpleAtoi(line, out);
    };
    long threads = 0;
    value("VmRSS:", &m.rss_kib);
    value("VmHWM:", &m.hwm_kib);
    value("Threads:", &threads);
    if (threads > 0) m.threads = static_cast<int>(threads);
  }
  return m;
}

double ProcessCpuMs(pid_t pid) {
  const std::string stat = ReadTrimmed("/proc/" + std::to_string(pid) + "/stat");
  // The command (field 2) may hold spaces: count fields after its closing parenthesis.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(paren + 2), ' ');
  long utime = 0, stime = 0;  // fields 14 and 15 of the whole line
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return 0;
  }
  return 1000.0 * static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuMs() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  auto ms = [](const timeval& t) { return t.tv_sec * 1000.0 + t.tv_usec / 1000.0; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

ServerProcess::ServerProcess(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  started_ = BenchClock::now();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0) ::_exit(127);
    ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
}

ServerProcess::~ServerProcess() { Stop(); }

absl::StatusOr<double> ServerProcess::WaitReadyMs(const std::string& socket,
                                                  std::chrono::milliseconds timeout) {
  const auto deadline = BenchClock::now() + timeout;
  while (BenchClock::now() < deadline) {
    if (pid_ <= 0 || ::waitpid(pid_, nullptr, WNOHANG) != 0) {
      pid_ = -1;
      return absl::UnavailableError("the server exited before answering Probe");
    }
    struct stat st {};
    if (::stat(socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      // A fresh channel per attempt: a channel's reconnect backoff would distort the figure.
      auto channel = grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
      auto identity = csi::v1::Identity::NewStub(channel);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      csi::v1::ProbeResponse resp;
      // A plugin that leaves `ready` unset is ready (CSI spec).
      if (identity->Probe(&ctx, {}, &resp).ok() && (!resp.has_ready() || resp.ready().value())) {
        return Ms(BenchClock::now() - started_);
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return absl::UnavailableError("no ready Probe answer in time");
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int wstatus = 0;
  for (int i = 0; i < 2000; ++i) {
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &wstatus, 0);
  pid_ = -1;
  return 128 + SIGKILL;
}

}  // namespace rbdcsi
