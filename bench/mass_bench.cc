// mass_bench: the seed incident's mass pod deletion, measured. N volumes are staged and
// published through `rbdcsi serve`'s socket (loop backend), then all unpublished and unstaged at
// once with kubelet-like concurrency (one caller per volume, all in parallel); the same volumes
// then go through a minimal program doing only the bare kernel work (loop attach + mount + bind
// mount; umount2 of both mounts + loop release). Ratios are taken within one run, over several
// repetitions in alternating order, medians reported. Leaks are checked after every cycle.
//
// The images are formatted once up front (mkfs.ext4, timed and reported apart), so neither side's
// stage includes mkfs. Runs as root inside a private mount namespace; the supervisor detaches any
// loop device backed under its temp dir afterwards, whatever happened.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/command.h"
#include "base/fd.h"
#include "base/file_util.h"
#include "base/status.h"
#include "bench/bench_support.h"
#include "bench/csi_client.h"

namespace rbdcsi {
namespace {

struct MassFlags {
  std::string rbdcsi = "build/cmd/rbdcsi";
  int volumes = 100;
  int concurrency = 100;
  int reps = 3;
  int size_mib = 64;
  std::string log_copy;         // where to copy the node plugin's log, for profiling
  bool state_on_tmpfs = false;  // isolates the cost of the records' fsyncs
};

struct Volume {
  csi::v1::Volume csi;
  std::string image;    // the loop backend's sparse file
  std::string staging;  // created by the CO (here: the benchmark) before staging
  std::string target;   // created and removed by the plugin (or the bare program)
  std::string device;   // bare program only
};

// Runs fn(i) for i in [0, n) on `concurrency` threads; returns the wall time in ms and counts
// calls that returned false in *failures.
double RunAll(int n, int concurrency, const std::function<bool(int)>& fn, int* failures) {
  std::atomic<int> next{0}, failed{0};
  const auto start = BenchClock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min(n, concurrency); ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        if (!fn(i)) ++failed;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  *failures += failed;
  return Ms(BenchClock::now() - start);
}

// ---- the bare kernel work ----

bool BareStage(Volume& v) {
  UniqueFd file(::open(v.image.c_str(), O_RDWR | O_CLOEXEC));
  UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!file.valid() || !ctl.valid()) return false;
  loop_config config{};
  config.fd = static_cast<__u32>(file.get());
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int number = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (number < 0) return false;
    const std::string dev = absl::StrCat("/dev/loop", number);
    UniqueFd loop(::open(dev.c_str(), O_RDWR | O_CLOEXEC));
    if (!loop.valid()) continue;
    if (::ioctl(loop.get(), LOOP_CONFIGURE, &config) == 0) {
      v.device = dev;
      break;
    }
    if (errno != EBUSY) return false;  // EBUSY: another thread took it first
  }
  if (v.device.empty()) return false;
  return ::mount(v.device.c_str(), v.staging.c_str(), "ext4", 0, nullptr) == 0 &&
         ::mkdir(v.target.c_str(), 0750) == 0 &&
         ::mount(v.staging.c_str(), v.target.c_str(), nullptr, MS_BIND, nullptr) == 0;
}

bool BareUnstage(Volume& v) {
  if (::umount2(v.target.c_str(), 0) != 0 || ::rmdir(v.target.c_str()) != 0 ||
      ::umount2(v.staging.c_str(), 0) != 0) {
    return false;
  }
  UniqueFd loop(::open(v.device.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
  if (!loop.valid() || ::ioctl(loop.get(), LOOP_CLR_FD, 0) != 0) return false;
  v.device.clear();
  return true;
}

// ---- one cycle of each side ----

struct Cycle {
  double stage_ms = 0;
  double unstage_ms = 0;
  double stage_cpu_ms = 0;  // CPU time of the node plugin, or of the bare program
  double unstage_cpu_ms = 0;
  int failures = 0;
  int leaks = 0;
};

int CountLeaks(const std::string& dir, const std::string& side) {
  const std::vector<std::string> mounts = MountsUnder(dir + "/kubelet");
  const std::vector<std::string> loops = LoopDevicesUnder(dir);
  for (const std::string& m : mounts)
    std::fprintf(stderr, "  %s leaked mount %s\n", side.c_str(), m.c_str());
  for (const std::string& l : loops)
    std::fprintf(stderr, "  %s leaked %s\n", side.c_str(), l.c_str());
  return static_cast<int>(mounts.size() + loops.size());
}

Cycle PluginCycle(CsiClient& node, pid_t node_pid, std::vector<Volume>& vols, const MassFlags& f,
                  const std::string& dir) {
  Cycle c;
  const int n = static_cast<int>(vols.size());
  const double cpu0 = ProcessCpuMs(node_pid);
  c.stage_ms = RunAll(
      n, f.concurrency,
      [&](int i) {
        Volume& v = vols[i];
        grpc::Status st = node.Stage(v.csi, v.staging);
        if (st.ok()) st = node.Publish(v.csi, v.staging, v.target);
        if (!st.ok()) std::fprintf(stderr, "  stage %d: %s\n", i, st.error_message().c_str());
        return st.ok();
      },
      &c.failures);
  const double cpu1 = ProcessCpuMs(node_pid);
  c.unstage_ms = RunAll(
      n, f.concurrency,
      [&](int i) {
        Volume& v = vols[i];
        grpc::Status st = node.Unpublish(v.csi.volume_id(), v.target);
        if (st.ok()) st = node.Unstage(v.csi.volume_id(), v.staging);
        if (!st.ok()) std::fprintf(stderr, "  unstage %d: %s\n", i, st.error_message().c_str());
        return st.ok();
      },
      &c.failures);
  c.stage_cpu_ms = cpu1 - cpu0;
  c.unstage_cpu_ms = ProcessCpuMs(node_pid) - cpu1;
  c.leaks = CountLeaks(dir, "rbdcsi");
  return c;
}

Cycle BareCycle(std::vector<Volume>& vols, const MassFlags& f, const std::string& dir) {
  Cycle c;
  const int n = static_cast<int>(vols.size());
  const double cpu0 = SelfCpuMs();
  c.stage_ms = RunAll(
      n, f.concurrency, [&](int i) { return BareStage(vols[i]); }, &c.failures);
  const double cpu1 = SelfCpuMs();
  c.unstage_ms = RunAll(
      n, f.concurrency, [&](int i) { return BareUnstage(vols[i]); }, &c.failures);
  c.stage_cpu_ms = cpu1 - cpu0;
  c.unstage_cpu_ms = SelfCpuMs() - cpu1;
  c.leaks = CountLeaks(dir, "bare");
  return c;
}

absl::Status Prepare(CsiClient& controller, const MassFlags& f, const std::string& dir,
                     std::vector<Volume>* vols, double* mkfs_ms) {
  for (int i = 0; i < f.volumes; ++i) {
    Volume v;
    ASSIGN_OR_RETURN(v.csi, controller.Create(absl::StrFormat("bench-%03d", i),
                                              static_cast<int64_t>(f.size_mib) << 20));
    const auto& ctx = v.csi.volume_context();
    v.image = absl::StrCat(dir, "/data/images/", ctx.at("pool"), "/", ctx.at("image"), ".img");
    if (::access(v.image.c_str(), R_OK | W_OK) != 0) return ErrnoToStatus(errno, v.image);
    v.staging = absl::StrFormat("%s/kubelet/staging/%03d", dir, i);
    v.target = absl::StrFormat("%s/kubelet/pods/%03d", dir, i);
    RETURN_IF_ERROR(MakeDirs(v.staging, 0750));
    vols->push_back(std::move(v));
  }
  RETURN_IF_ERROR(MakeDirs(dir + "/kubelet/pods", 0750));
  std::unique_ptr<CommandRunner> runner = NewRealCommandRunner();
  int failures = 0;
  *mkfs_ms = RunAll(
      f.volumes, f.concurrency,
      [&](int i) {
        absl::StatusOr<CommandResult> r = runner->Run({"mkfs.ext4", "-q", "-F", (*vols)[i].image});
        return r.ok() && r->exit_code == 0;
      },
      &failures);
  if (failures > 0) return absl::InternalError(absl::StrCat(failures, " mkfs.ext4 runs failed"));
  return absl::OkStatus();
}

// Per side (rbdcsi through its socket, or the bare kernel work), per repetition: the batches'
// wall and CPU times.
struct Timings {
  std::vector<double> stage_ms, unstage_ms, stage_cpu_ms, unstage_cpu_ms;
  void Add(const Cycle& c) {
    stage_ms.push_back(c.stage_ms);
    unstage_ms.push_back(c.unstage_ms);
    stage_cpu_ms.push_back(c.stage_cpu_ms);
    unstage_cpu_ms.push_back(c.unstage_cpu_ms);
  }
};

struct Results {
  Timings plugin, bare;
  int failures = 0, leaks = 0;
};

// The repetitions, alternating which side goes first; stops at the first failure or leak.
Results RunCycles(CsiClient& node, pid_t node_pid, std::vector<Volume>& vols, const MassFlags& f,
                  const std::string& dir) {
  Results r;
  for (int rep = 0; rep < f.reps; ++rep) {
    for (int side = 0; side < 2; ++side) {
      const bool plugin = (rep + side) % 2 == 0;
      Cycle c = plugin ? PluginCycle(node, node_pid, vols, f, dir) : BareCycle(vols, f, dir);
      (plugin ? r.plugin : r.bare).Add(c);
      r.failures += c.failures;
      r.leaks += c.leaks;
      std::fprintf(stderr,
                   "rep %d %s: stage+publish %.1f ms (CPU %.0f ms), unpublish+unstage %.1f ms "
                   "(CPU %.0f ms)\n",
                   rep, plugin ? "rbdcsi" : "bare", c.stage_ms, c.stage_cpu_ms, c.unstage_ms,
                   c.unstage_cpu_ms);
      if (c.leaks > 0 || c.failures > 0) break;
    }
    if (r.leaks > 0 || r.failures > 0) break;
  }
  return r;
}

// The BENCHMARKS.md section: medians of both sides, their ratio against the goal, and notes.
void PrintResults(const MassFlags& f, const Results& r, double mkfs_ms, const MemoryFigures& mem) {
  const Timings& p = r.plugin;
  const Timings& b = r.bare;
  const double stage_ratio = Median(p.stage_ms) / Median(b.stage_ms);
  const double unstage_ratio = Median(p.unstage_ms) / Median(b.unstage_ms);
  auto verdict = [](double ratio) { return ratio <= 1.5 ? "met" : "missed"; };
  std::printf("### Mass stage and unstage (`mass_bench`)\n\n");
  std::printf(
      "%d volumes of %d MiB, %d concurrent callers (one per volume), %d repetitions in "
      "alternating order, median wall time of the whole batch:\n\n",
      f.volumes, f.size_mib, std::min(f.concurrency, f.volumes),
      static_cast<int>(p.stage_ms.size()));
  std::printf(
      "| batch | rbdcsi via socket | bare kernel work | ratio | goal <= 1.5x | CPU: node plugin "
      "/ bare program |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::printf("| stage + publish | %.0f ms | %.0f ms | %.2fx | %s | %.0f / %.0f ms |\n",
              Median(p.stage_ms), Median(b.stage_ms), stage_ratio, verdict(stage_ratio),
              Median(p.stage_cpu_ms), Median(b.stage_cpu_ms));
  std::printf("| unpublish + unstage | %.0f ms | %.0f ms | %.2fx | %s | %.0f / %.0f ms |\n\n",
              Median(p.unstage_ms), Median(b.unstage_ms), unstage_ratio, verdict(unstage_ratio),
              Median(p.unstage_cpu_ms), Median(b.unstage_cpu_ms));
  std::printf(
      "mkfs.ext4 of the %d images beforehand (not in either figure): %.0f ms. "
      "CPU: user + system time of the node plugin process (10 ms ticks) and of the bare "
      "program, medians; work the kernel does in its own threads is in neither. "
      "Failed calls: %d. Leaked mounts and loop devices after the cycles: %d. "
      "Node plugin after the batches: RSS %.1f MB, peak %.1f MB, %d threads.\n\n",
      f.volumes, mkfs_ms, r.failures, r.leaks, mem.rss_kib / 1024.0, mem.hwm_kib / 1024.0,
      mem.threads);
}

absl::Status RunWorker(const MassFlags& f, const std::string& dir) {
  if (!UnsharePrivateNamespace()) return ErrnoToStatus(errno, "private mount namespace");
  for (const char* sub : {"/state", "/ctlstate", "/data", "/keys"}) {
    RETURN_IF_ERROR(MakeDirs(dir + sub, 0700));
  }
  if (f.state_on_tmpfs &&
      ::mount("rbdcsi-bench", (dir + "/state").c_str(), "tmpfs", 0, "mode=0700") != 0) {
    return ErrnoToStatus(errno, "mounting a tmpfs on the state directory");
  }
  const std::vector<std::string> common = {"--data-dir",   dir + "/data", "--key-dir",
                                           dir + "/keys",  "--nodeid",    "bench",
                                           "--log-format", "json"};
  std::vector<std::string> node_argv = {
      f.rbdcsi,          "serve",       "--endpoint",   "unix://" + dir + "/node.sock",
      "--no-controller", "--state-dir", dir + "/state", "--kubelet-dir",
      dir + "/kubelet"};
  std::vector<std::string> ctl_argv = {
      f.rbdcsi,    "serve",       "--endpoint",     "unix://" + dir + "/ctl.sock",
      "--no-node", "--state-dir", dir + "/ctlstate"};
  node_argv.insert(node_argv.end(), common.begin(), common.end());
  ctl_argv.insert(ctl_argv.end(), common.begin(), common.end());
  ServerProcess node_server(node_argv, dir + "/node.log");
  ServerProcess ctl_server(ctl_argv, dir + "/ctl.log");
  RETURN_IF_ERROR(node_server.WaitReadyMs(dir + "/node.sock", std::chrono::seconds(20)).status());
  RETURN_IF_ERROR(ctl_server.WaitReadyMs(dir + "/ctl.sock", std::chrono::seconds(20)).status());
  CsiClient node(dir + "/node.sock"), controller(dir + "/ctl.sock");

  std::vector<Volume> vols;
  double mkfs_ms = 0;
  RETURN_IF_ERROR(Prepare(controller, f, dir, &vols, &mkfs_ms));
  const Results results = RunCycles(node, node_server.pid(), vols, f, dir);
  const MemoryFigures mem = ReadMemory(node_server.pid());
  for (const Volume& v : vols) (void)controller.Delete(v.csi.volume_id());
  PrintResults(f, results, mkfs_ms, mem);
  if (results.failures > 0 || results.leaks > 0) {
    return absl::InternalError("failed calls or leaks; see above");
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace rbdcsi

int main(int argc, char** argv) {
  rbdcsi::MassFlags flags;
  CLI::App app{"mass_bench: mass stage/unstage through rbdcsi vs the bare kernel work"};
  app.add_option("--rbdcsi", flags.rbdcsi, "The rbdcsi binary")->capture_default_str();
  app.add_option("--volumes", flags.volumes, "Volumes")->capture_default_str();
  app.add_option("--concurrency", flags.concurrency, "Concurrent callers")->capture_default_str();
  app.add_option("--reps", flags.reps, "Repetitions of each side")->capture_default_str();
  app.add_option("--size-mib", flags.size_mib, "Volume size")->capture_default_str();
  app.add_option("--log-copy", flags.log_copy, "Copy the node plugin's log here at the end");
  app.add_flag("--state-on-tmpfs", flags.state_on_tmpfs,
               "Keep the node's --state-dir on tmpfs (no fsync cost), to isolate that cost");
  CLI11_PARSE(app, argc, argv);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "mass_bench: must run as root (mounts, loop devices)\n");
    return 2;
  }
  flags.rbdcsi = std::filesystem::absolute(flags.rbdcsi).string();
  char tmpl[] = "/tmp/rbdcsi-massbench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::perror("mass_bench: mkdtemp");
    return 2;
  }
  const std::string dir = tmpl;
  return rbdcsi::RunSupervised(
      "mass_bench", [&] { return rbdcsi::RunWorker(flags, dir); },
      [&] {
        rbdcsi::DetachLoopDevicesUnder(dir, "mass_bench");
        std::error_code ec;
        if (!flags.log_copy.empty()) {
          std::filesystem::copy_file(dir + "/node.log", flags.log_copy,
                                     std::filesystem::copy_options::overwrite_existing, ec);
        }
        std::filesystem::remove_all(dir, ec);
      });
}
