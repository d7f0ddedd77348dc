// Pieces the benchmark programs share: statistics, an isolated worker in a private mount
// namespace, a CSI server process with start-up and memory figures, and leak checks.
#ifndef RBDCSI_BENCH_BENCH_SUPPORT_H_
#define RBDCSI_BENCH_BENCH_SUPPORT_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rbdcsi {

using BenchClock = std::chrono::steady_clock;

double Ms(BenchClock::duration d);
// The value at quantile `q` (0..1) of `values` (nearest rank); 0 when empty.
double Quantile(std::vector<double> values, double q);
inline double Median(std::vector<double> values) { return Quantile(std::move(values), 0.5); }

// Whitespace-trimmed contents of a small file; "" when unreadable.
std::string ReadTrimmed(const std::string& path);
bool WriteSmallFile(const std::string& path, const std::string& text);

// Moves the caller into a new mount namespace whose mounts are all private, so nothing it
// mounts reaches the host and everything goes away with the namespace's last process.
bool UnsharePrivateNamespace();

// Runs `worker` in a forked child and returns its exit code. SIGINT/SIGTERM/SIGHUP to this
// process kill the worker. `cleanup` runs in this process after the worker is gone, whatever
// ended it. `name` prefixes messages.
int RunSupervised(const std::string& name, const std::function<absl::Status()>& worker,
                  const std::function<void()>& cleanup);

// Loop devices whose backing file lies under `dir`, and mount points under `dir` in the
// caller's mount namespace: what a benchmark cycle must not leave behind.
std::vector<std::string> LoopDevicesUnder(const std::string& dir);
std::vector<std::string> MountsUnder(const std::string& dir);
// Detaches the loop devices backed under `dir` (only those, checked on each device); says so.
void DetachLoopDevicesUnder(const std::string& dir, const std::string& name);

// VmRSS and VmHWM of a process in KiB, from /proc/PID/status (0 when gone).
struct MemoryFigures {
  long rss_kib = 0;
  long hwm_kib = 0;
  int threads = 0;
};
MemoryFigures ReadMemory(pid_t pid);

// CPU time (user + system, every thread that ever ran, in ms) of a process from /proc/PID/stat
// (clock-tick resolution, 10 ms at 100 Hz), and of this process from getrusage (microseconds).
// A figure that load on the machine moves far less than wall time.
double ProcessCpuMs(pid_t pid);
double SelfCpuMs();

// A CSI plugin started with argv; stdout/stderr go to `log_path`. It dies with the thread that
// started it (PR_SET_PDEATHSIG), is stopped with SIGTERM (then SIGKILL) on destruction.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& argv, const std::string& log_path);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Calls Probe on `socket` (a path) until it answers ready; returns the time from the fork
  // to that first ready answer. UNAVAILABLE after `timeout` or when the process exited.
  absl::StatusOr<double> WaitReadyMs(const std::string& socket, std::chrono::milliseconds timeout);
  // SIGTERM, wait up to 20 s, then SIGKILL. Returns the exit code.
  int Stop();

 private:
  pid_t pid_ = -1;
  BenchClock::time_point started_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_BENCH_BENCH_SUPPORT_H_
