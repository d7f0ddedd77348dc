// holder_bench: builds a synthetic node (mounts, mount namespaces, processes, threads), plants
// one holder of each kind on a loop device, and prints side by side how long rbdcsi's holder
// scan, `grep -l` over every task's mountinfo, `lsof DEV` and `fuser -vm DEV` take and what each
// finds; then the latency from a holder's release to the unmap completing, over many trials,
// with the ReleaseWaiter. Must run as root; it is a program, not a test.
//
// Clean-up: a supervisor process forks the worker that does everything inside a private mount
// namespace (so no mount reaches the host). All processes the worker forks die with it
// (PR_SET_PDEATHSIG). Whatever ends the worker (success, failure, Ctrl-C, kill), the supervisor
// then detaches the loop device and removes the device-mapper device it created (only those,
// checked by name and backing file) and deletes the temp directory.
#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/command.h"
#include "base/fd.h"
#include "base/status.h"
#include "bench/bench_support.h"
#include "bench/holder_compare.h"
#include "bench/synthetic_node.h"
#include "holders/holders.h"
#include "holders/procfs.h"
#include "holders/release_waiter.h"
#include "mounter/mountinfo.h"

namespace rbdcsi {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchFlags {
  NodeShape shape;
  int trials = 100;
  int scan_repeats = 5;
  int tool_repeats = 3;
  bool tools = true;
  std::string label;     // the row's label in the --markdown file
  std::string markdown;  // when set, a BENCHMARKS.md table row is appended to this file
  int pause_seconds = 0;
};

bool DeviceFree(const std::string& device) {
  UniqueFd fd(::open(device.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
  return fd.valid();
}

// True when loop `device` is backed by `image` (so it is ours to detach).
bool OurLoop(const std::string& device, const std::string& image) {
  const std::string name = device.substr(device.rfind('/') + 1);
  return ReadTrimmed(absl::StrCat("/sys/block/", name, "/loop/backing_file")) == image;
}

// The unmap: an exclusive open (what rbd unmap needs) and LOOP_CLR_FD, done at our close.
bool TryUnmap(const std::string& device) {
  UniqueFd fd(::open(device.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
  if (!fd.valid()) return false;
  return ::ioctl(fd.get(), LOOP_CLR_FD, 0) == 0;
}

// Release-to-unmap: a private holder is killed; the ReleaseWaiter wakes on its pidfd; the unmap
// is retried. Returns per-trial latencies in ms.
absl::StatusOr<std::vector<double>> MeasureRelease(HolderScanner& scanner, CommandRunner& runner,
                                                   const std::string& dir, const std::string& image,
                                                   std::string& device, int trials, int* timeouts) {
  const std::string staging = dir + "/kubelet/globalmount";
  std::vector<double> latencies;
  for (int t = 0; t < trials; ++t) {
    if (::mount(device.c_str(), staging.c_str(), "ext4", 0, nullptr) != 0) {
      return ErrnoToStatus(errno, "mount " + device);
    }
    ASSIGN_OR_RETURN(const pid_t holder, ForkHolder("node_exporter", UnsharePrivateNamespace));
    if (::umount2(staging.c_str(), 0) != 0) return ErrnoToStatus(errno, "umount " + staging);
    struct stat st;
    if (::stat(device.c_str(), &st) != 0) return ErrnoToStatus(errno, device);
    ASSIGN_OR_RETURN(const HolderReport report,
                     scanner.Scan(::major(st.st_rdev), ::minor(st.st_rdev), {}));
    if (!report.held()) return absl::InternalError("the planted holder was not found");
    ReleaseWaiter waiter;
    RETURN_IF_ERROR(waiter.Watch(report));

    const auto start = Clock::now();
    ::kill(holder, SIGKILL);
    while (!TryUnmap(device)) {
      if (errno != EBUSY) return ErrnoToStatus(errno, "unmap " + device);
      ASSIGN_OR_RETURN(const bool changed, waiter.WaitForChange(std::chrono::seconds(5)));
      if (!changed) ++*timeouts;
    }
    latencies.push_back(Ms(Clock::now() - start));
    KillAndReap(holder);

    // Re-attach for the next trial (not timed); another loop device if ours was taken meanwhile.
    absl::StatusOr<CommandResult> again = runner.Run({"losetup", device, image});
    if (!again.ok() || again->exit_code != 0) {
      again = runner.Run({"losetup", "--find", "--show", image});
      if (!again.ok() || again->exit_code != 0) return absl::InternalError("cannot re-attach");
      device = std::string(absl::StripAsciiWhitespace(again->out));
      WriteSmallFile(dir + "/loop-device", device);
    }
  }
  return latencies;
}

// The synthetic node, and the kubelet directory (a shared tmpfs) the holders are planted under.
absl::Status BuildNode(const NodeShape& shape, const std::string& dir, SyntheticNode& node) {
  const auto build = Clock::now();
  RETURN_IF_ERROR(node.AddMounts(dir + "/mounts", shape.mounts));
  const std::string kubelet = dir + "/kubelet";
  ::mkdir(kubelet.c_str(), 0755);
  if (::mount("rbdcsi-bench", kubelet.c_str(), "tmpfs", 0, nullptr) != 0 ||
      ::mount(nullptr, kubelet.c_str(), nullptr, MS_SHARED, nullptr) != 0) {
    return ErrnoToStatus(errno, "kubelet directory");
  }
  ::mkdir((kubelet + "/globalmount").c_str(), 0755);
  ::mkdir((kubelet + "/lazy").c_str(), 0755);
  RETURN_IF_ERROR(node.StartProcesses(shape));
  std::printf(
      "synthetic node: %d bind mounts in every namespace, %d private mount namespaces, "
      "%d processes x %d threads; built in %.1f s\n",
      shape.mounts, shape.namespaces, shape.processes, shape.threads,
      Ms(Clock::now() - build) / 1000);
  return absl::OkStatus();
}

// DIR/image (256 MiB) on a loop device, with ext4; the device is also written to
// DIR/loop-device for the clean-up.
absl::StatusOr<std::string> MakeDevice(CommandRunner& runner, const std::string& dir) {
  const std::string image = dir + "/image";
  {
    UniqueFd fd(::open(image.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    if (!fd.valid() || ::ftruncate(fd.get(), 256 << 20) != 0) return ErrnoToStatus(errno, image);
  }
  absl::StatusOr<CommandResult> attach = runner.Run({"losetup", "--find", "--show", image});
  if (!attach.ok() || attach->exit_code != 0) return absl::InternalError("losetup failed");
  std::string device(absl::StripAsciiWhitespace(attach->out));
  WriteSmallFile(dir + "/loop-device", device);
  absl::StatusOr<CommandResult> mkfs = runner.Run({"mkfs.ext4", "-q", "-F", device});
  if (!mkfs.ok() || mkfs->exit_code != 0) return absl::InternalError("mkfs.ext4 failed");
  return device;
}

// The rbdcsi scan and (unless --no-tools) grep, lsof and fuser over the planted holders, printed.
std::vector<Found> CompareScans(const BenchFlags& flags, CommandRunner& runner,
                                HolderScanner& scanner, const std::string& device, unsigned major,
                                unsigned minor, const Planted& planted) {
  HolderReport report;
  std::vector<Found> rows = {
      ScanWithRbdcsi(scanner, major, minor, planted, flags.scan_repeats, &report)};
  const std::string dev_text = absl::StrCat(major, ":", minor);
  if (flags.tools) {
    rows.push_back(RunTool(
        runner, "grep -l ' " + dev_text + " ' /proc/*/task/*/mountinfo",
        {"sh", "-c", "LC_ALL=C grep -l ' " + dev_text + " ' /proc/*/task/*/mountinfo 2>/dev/null"},
        planted, /*grep=*/true, flags.tool_repeats));
    rows.push_back(
        RunTool(runner, "lsof " + device, {"lsof", device}, planted, false, flags.tool_repeats));
    rows.push_back(RunTool(runner, "fuser -vm " + device, {"fuser", "-vm", device}, planted, false,
                           flags.tool_repeats));
  }
  PrintComparison(rows, !planted.dm.empty());
  std::printf("rbdcsi scan: %d processes, %d mount namespaces read, method %s, %zu holders\n",
              report.processes_scanned, report.namespaces_scanned,
              std::string(NamespaceMethodName(report.method)).c_str(), report.holders.size());
  if (rows.size() == 4) {
    std::printf("speed-up of the rbdcsi scan: %.0fx vs grep, %.1fx vs lsof, %.1fx vs fuser\n",
                rows[1].ms / rows[0].ms, rows[2].ms / rows[0].ms, rows[3].ms / rows[0].ms);
  }
  return rows;
}

// Release-to-unmap latencies (sorted) on a quiet device: the planted holders are dropped first.
absl::StatusOr<std::vector<double>> ReleaseLatencies(const BenchFlags& flags, CommandRunner& runner,
                                                     HolderScanner& scanner, const std::string& dir,
                                                     std::string& device, const Planted& planted) {
  KillAndReap(planted.mount);
  KillAndReap(planted.fd);
  KillAndReap(planted.cwd);
  if (!planted.dm.empty()) (void)runner.Run({"dmsetup", "remove", "--noudevsync", planted.dm});
  for (int i = 0; i < 500 && !DeviceFree(device); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // Set-up only, not measured.
  }
  int timeouts = 0;
  ASSIGN_OR_RETURN(
      std::vector<double> latencies,
      MeasureRelease(scanner, runner, dir, dir + "/image", device, flags.trials, &timeouts));
  std::sort(latencies.begin(), latencies.end());
  std::printf(
      "\nrelease-to-unmap over %d trials (private holder SIGKILLed -> ReleaseWaiter wakes "
      "on its pidfd -> O_EXCL open + LOOP_CLR_FD): p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
      "waits that timed out: %d\n",
      flags.trials, Quantile(latencies, 0.50), Quantile(latencies, 0.99), latencies.back(),
      timeouts);
  return latencies;
}

// A BENCHMARKS.md table row, appended to --markdown.
void AppendMarkdownRow(const BenchFlags& flags, const std::vector<Found>& rows,
                       const std::vector<double>& latencies) {
  if (FILE* md = flags.markdown.empty() ? nullptr : std::fopen(flags.markdown.c_str(), "a");
      md != nullptr && rows.size() > 1) {
    const double ratio = rows[1].ms / rows[0].ms;
    const bool all_found = rows[0].mount && rows[0].fd && rows[0].cwd;
    std::fprintf(md, "| %s | %.1f ms | %.1f ms | %.0fx (%s) | %s | %.2f / %.2f ms |\n",
                 flags.label.c_str(), rows[0].ms, rows[1].ms, ratio, ratio >= 30 ? "met" : "missed",
                 all_found ? "all three" : "NOT all", Quantile(latencies, 0.50),
                 Quantile(latencies, 0.99));
    std::fclose(md);
  }
}

absl::Status RunWorker(const BenchFlags& flags, const std::string& dir) {
  if (!UnsharePrivateNamespace()) return ErrnoToStatus(errno, "private mount namespace");
  std::unique_ptr<CommandRunner> runner = NewRealCommandRunner();
  SyntheticNode node;
  RETURN_IF_ERROR(BuildNode(flags.shape, dir, node));
  ASSIGN_OR_RETURN(std::string device, MakeDevice(*runner, dir));
  struct stat st;
  if (::stat(device.c_str(), &st) != 0) return ErrnoToStatus(errno, device);
  const unsigned major = ::major(st.st_rdev), minor = ::minor(st.st_rdev);

  Planted planted;
  std::string dm_note;
  RETURN_IF_ERROR(PlantHolders(*runner, dir, device, planted, dm_note));
  std::printf(
      "device %s (%u:%u); planted: private-namespace mount (pid %d, node_exporter), "
      "open fd (pid %d), cwd after lazy unmount (pid %d), stacked dm: %s\n",
      device.c_str(), major, minor, planted.mount, planted.fd, planted.cwd,
      planted.dm.empty() ? ("skipped, " + dm_note).c_str() : planted.dm.c_str());
  if (flags.pause_seconds > 0) {
    std::printf("pausing %d s: worker pid %d, device %s\n", flags.pause_seconds, ::getpid(),
                device.c_str());
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(flags.pause_seconds));
  }
  std::unique_ptr<ProcFs> procfs = NewRealProcFs();
  HolderScanner scanner(*procfs);
  const std::vector<Found> rows =
      CompareScans(flags, *runner, scanner, device, major, minor, planted);
  ASSIGN_OR_RETURN(const std::vector<double> latencies,
                   ReleaseLatencies(flags, *runner, scanner, dir, device, planted));
  AppendMarkdownRow(flags, rows, latencies);
  node.Stop();
  return absl::OkStatus();
}

// Runs in the supervisor after the worker is gone, whatever happened to it.
void CleanUp(const std::string& dir) {
  std::unique_ptr<CommandRunner> runner = NewRealCommandRunner();
  const std::string dm = ReadTrimmed(dir + "/dm-name");
  if (!dm.empty()) (void)runner->Run({"dmsetup", "remove", "--noudevsync", "--retry", dm});
  const std::string device = ReadTrimmed(dir + "/loop-device");
  const std::string image = dir + "/image";
  if (!device.empty() && OurLoop(device, image)) {
    // The worker's processes and namespaces die asynchronously: wait (bounded) until free.
    for (int i = 0; i < 200 && !DeviceFree(device); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    UniqueFd fd(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid() || ::ioctl(fd.get(), LOOP_CLR_FD, 0) != 0) {
      std::fprintf(stderr, "holder_bench: could not detach %s; run: losetup -d %s\n",
                   device.c_str(), device.c_str());
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace rbdcsi

int main(int argc, char** argv) {
  rbdcsi::BenchFlags flags;
  CLI::App app{"holder_bench: rbdcsi holder scan vs grep/lsof/fuser, and release-to-unmap latency"};
  app.add_option("--mounts", flags.shape.mounts, "Bind mounts per namespace")
      ->capture_default_str();
  app.add_option("--namespaces", flags.shape.namespaces, "Mount namespaces")->capture_default_str();
  app.add_option("--processes", flags.shape.processes, "Processes")->capture_default_str();
  app.add_option("--threads", flags.shape.threads, "Threads per process")->capture_default_str();
  app.add_option("--trials", flags.trials, "Release-to-unmap trials")->capture_default_str();
  app.add_option("--scan-repeats", flags.scan_repeats, "Timed rbdcsi scans")->capture_default_str();
  app.add_option("--tool-repeats", flags.tool_repeats, "Timed runs of each tool (median)")
      ->capture_default_str();
  app.add_flag("!--no-tools", flags.tools, "Skip grep, lsof and fuser");
  app.add_option("--markdown", flags.markdown, "Append a BENCHMARKS.md table row to this file");
  app.add_option("--label", flags.label, "The row's label")->capture_default_str();
  app.add_option("--pause", flags.pause_seconds,
                 "Seconds to wait after planting the holders, to inspect the node by hand");
  CLI11_PARSE(app, argc, argv);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "holder_bench: must run as root (mounts, namespaces, loop devices)\n");
    return 2;
  }
  flags.trials = std::max(flags.trials, 1);
  flags.scan_repeats = std::max(flags.scan_repeats, 1);
  flags.tool_repeats = std::max(flags.tool_repeats, 1);
  char tmpl[] = "/tmp/rbdcsi-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::perror("holder_bench: mkdtemp");
    return 2;
  }
  const std::string dir = tmpl;
  return rbdcsi::RunSupervised(
      "holder_bench", [&] { return rbdcsi::RunWorker(flags, dir); }, [&] { rbdcsi::CleanUp(dir); });
}
