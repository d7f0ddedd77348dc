// rpc_bench: footprint and RPC overhead of the node plugin, side by side with
// csi-driver-host-path (the Go reference driver) when its binary is given, in the same run.
//
// Footprint: `rbdcsi serve` runs with the node service only, as the DaemonSet runs it (flags of
// deploy/node-daemonset.yaml, the loop mapper as default); start-up is the time from fork to the
// first answered Probe, idle RSS is read 1 s later; the plugins start alternately, medians are
// reported. Peak RSS is VmHWM after the RPC load below.
// RPC overhead: after CreateVolume, NodeStageVolume and NodePublishVolume of one volume,
// NodeGetCapabilities, NodeGetVolumeStats and an idempotent repeat of NodeStageVolume, one call
// at a time, in rounds alternating between the plugins; p50/p99 per call.
//
// Runs as root in a private mount namespace (publishing mounts); nothing reaches the host.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/file_util.h"
#include "base/status.h"
#include "bench/bench_support.h"
#include "bench/csi_client.h"

namespace rbdcsi {
namespace {

struct RpcFlags {
  std::string rbdcsi = "build/cmd/rbdcsi";
  std::string hostpath;  // csi-driver-host-path's hostpathplugin; empty: rbdcsi alone
  std::string hostpath_label = "csi-driver-host-path";
  int starts = 5;
  int calls = 500;
  int rounds = 3;
};

// One plugin under test: how to start its node process, and where volumes come from.
struct Subject {
  std::string label;
  std::string dir;
  std::vector<std::string> node_argv;
  std::vector<std::string> controller_argv;  // empty: the node process has the controller
  std::string node_socket() const { return dir + "/node.sock"; }
  std::string controller_socket() const {
    return controller_argv.empty() ? node_socket() : dir + "/ctl.sock";
  }
  // Figures.
  std::vector<double> startup_ms, idle_kib, threads;
  long peak_kib = 0;
  std::map<std::string, std::vector<double>> latencies;  // by call
};

Subject RbdcsiSubject(const RpcFlags& f, const std::string& dir) {
  Subject s;
  s.label = "rbdcsi serve --no-controller";
  s.dir = dir + "/rbdcsi";
  const std::vector<std::string> common = {"--nodeid",      "bench",     "--data-dir",
                                           s.dir + "/data", "--key-dir", s.dir + "/keys",
                                           "--log-format",  "json"};
  s.node_argv = {f.rbdcsi,
                 "serve",
                 "--endpoint",
                 "unix://" + s.node_socket(),
                 "--no-controller",
                 "--state-dir",
                 s.dir + "/state",
                 "--unstage-wait",
                 "5",
                 "--grace-period",
                 "30",
                 "--kubelet-dir",  // the staging and target paths below lie under it
                 s.dir};
  s.node_argv.insert(s.node_argv.end(), common.begin(), common.end());
  s.controller_argv = {
      f.rbdcsi,    "serve",       "--endpoint",       "unix://" + s.dir + "/ctl.sock",
      "--no-node", "--state-dir", s.dir + "/ctlstate"};
  s.controller_argv.insert(s.controller_argv.end(), common.begin(), common.end());
  return s;
}

Subject HostpathSubject(const RpcFlags& f, const std::string& dir) {
  Subject s;
  s.label = f.hostpath_label;
  s.dir = dir + "/hostpath";
  s.node_argv = {f.hostpath,   "--endpoint",    "unix://" + s.node_socket(), "--nodeid", "bench",
                 "--statedir", s.dir + "/state"};
  return s;
}

absl::Status MeasureStartup(Subject& s) {
  std::error_code ec;
  std::filesystem::remove(s.node_socket(), ec);
  ServerProcess server(s.node_argv, s.dir + "/node.log");
  ASSIGN_OR_RETURN(double ms, server.WaitReadyMs(s.node_socket(), std::chrono::seconds(20)));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const MemoryFigures mem = ReadMemory(server.pid());
  s.startup_ms.push_back(ms);
  s.idle_kib.push_back(static_cast<double>(mem.rss_kib));
  s.threads.push_back(mem.threads);
  return absl::OkStatus();
}

// The calls measured, in the order measured.
const char* const kCalls[] = {"NodeGetCapabilities", "NodeGetVolumeStats",
                              "NodeStageVolume (repeat)"};

grpc::Status Call(CsiClient& c, int which, const csi::v1::Volume& v, const std::string& staging,
                  const std::string& target) {
  switch (which) {
    case 0:
      return c.Capabilities();
    case 1:
      return c.Stats(v.volume_id(), target);
    default:
      return c.Stage(v, staging);
  }
}

// A running subject with one volume staged and published.
struct Running {
  std::unique_ptr<ServerProcess> node, controller;
  std::unique_ptr<CsiClient> client, controller_client;
  csi::v1::Volume volume;
  std::string staging, target;
};

absl::Status StartWithVolume(Subject& s, Running& r) {
  r.node = std::make_unique<ServerProcess>(s.node_argv, s.dir + "/node.log");
  RETURN_IF_ERROR(r.node->WaitReadyMs(s.node_socket(), std::chrono::seconds(20)).status());
  if (!s.controller_argv.empty()) {
    r.controller = std::make_unique<ServerProcess>(s.controller_argv, s.dir + "/ctl.log");
    RETURN_IF_ERROR(
        r.controller->WaitReadyMs(s.controller_socket(), std::chrono::seconds(20)).status());
  }
  r.client = std::make_unique<CsiClient>(s.node_socket());
  r.controller_client = std::make_unique<CsiClient>(s.controller_socket());
  ASSIGN_OR_RETURN(r.volume, r.controller_client->Create("rpc-bench", 64 << 20));
  r.staging = s.dir + "/staging";
  r.target = s.dir + "/pod/volume";
  RETURN_IF_ERROR(MakeDirs(r.staging, 0750));
  RETURN_IF_ERROR(MakeDirs(s.dir + "/pod", 0750));
  grpc::Status st = r.client->Stage(r.volume, r.staging);
  if (st.ok()) st = r.client->Publish(r.volume, r.staging, r.target);
  if (!st.ok()) {
    return absl::InternalError(absl::StrCat(s.label, ": staging: ", st.error_message()));
  }
  return absl::OkStatus();
}

absl::Status MeasureCalls(Subject& s, Running& r, int calls) {
  for (int which = 0; which < 3; ++which) {
    for (int i = 0; i < calls + 20; ++i) {
      const auto start = BenchClock::now();
      grpc::Status st = Call(*r.client, which, r.volume, r.staging, r.target);
      const double ms = Ms(BenchClock::now() - start);
      if (!st.ok()) {
        return absl::InternalError(
            absl::StrCat(s.label, ": ", kCalls[which], ": ", st.error_message()));
      }
      if (i >= 20) s.latencies[kCalls[which]].push_back(ms);  // the first 20 warm up
    }
  }
  return absl::OkStatus();
}

void StopWithVolume(Running& r) {
  if (r.client) {
    (void)r.client->Unpublish(r.volume.volume_id(), r.target);
    (void)r.client->Unstage(r.volume.volume_id(), r.staging);
    (void)r.controller_client->Delete(r.volume.volume_id());
  }
}

std::string Mb(double kib) { return absl::StrFormat("%.1f MB", kib / 1024); }

void Report(const RpcFlags& f, std::vector<Subject>& subjects) {
  std::printf("### Footprint and RPC overhead (`rpc_bench`)\n\n");
  std::printf(
      "Start-up and idle RSS: median of %d starts per plugin, alternating; peak RSS: "
      "VmHWM after %d rounds of the calls below.\n\n",
      f.starts, f.rounds);
  std::printf("| plugin | start-up to first Probe | idle RSS | peak RSS | threads idle |\n");
  std::printf("|---|---|---|---|---|\n");
  for (Subject& s : subjects) {
    std::printf("| %s | %.1f ms | %s | %s | %.0f |\n", s.label.c_str(), Median(s.startup_ms),
                Mb(Median(s.idle_kib)).c_str(), Mb(static_cast<double>(s.peak_kib)).c_str(),
                Median(s.threads));
  }
  const Subject& me = subjects[0];
  std::printf("\nGoal start-up <= 50 ms: %s (%.1f ms).\n",
              Median(me.startup_ms) <= 50 ? "met" : "missed", Median(me.startup_ms));
  if (subjects.size() > 1) {
    const Subject& ref = subjects[1];
    const double idle = Median(me.idle_kib) / Median(ref.idle_kib);
    const double peak = static_cast<double>(me.peak_kib) / static_cast<double>(ref.peak_kib);
    std::printf("Goal RSS <= 0.7x the reference: idle %.2fx (%s), peak %.2fx (%s).\n", idle,
                idle <= 0.7 ? "met" : "missed", peak, peak <= 0.7 ? "met" : "missed");
  }
  std::printf("\n| call (%d per plugin, one at a time) |", f.calls * f.rounds);
  for (const Subject& s : subjects) std::printf(" %s p50 / p99 |", s.label.c_str());
  if (subjects.size() > 1) std::printf(" ratio p50 / p99 |");
  std::printf("\n|---|");
  for (size_t i = 0; i < subjects.size() + (subjects.size() > 1 ? 1 : 0); ++i) std::printf("---|");
  std::printf("\n");
  for (const char* call : kCalls) {
    std::printf("| %s |", call);
    for (Subject& s : subjects) {
      std::printf(" %.3f / %.3f ms |", Median(s.latencies[call]),
                  Quantile(s.latencies[call], 0.99));
    }
    if (subjects.size() > 1) {
      auto& a = subjects[0].latencies[call];
      auto& b = subjects[1].latencies[call];
      std::printf(" %.2fx / %.2fx |", Median(a) / Median(b), Quantile(a, 0.99) / Quantile(b, 0.99));
    }
    std::printf("\n");
  }
  std::printf("\n");
}

absl::Status RunWorker(const RpcFlags& f, const std::string& dir) {
  if (!UnsharePrivateNamespace()) return ErrnoToStatus(errno, "private mount namespace");
  std::vector<Subject> subjects = {RbdcsiSubject(f, dir)};
  if (!f.hostpath.empty()) subjects.push_back(HostpathSubject(f, dir));
  for (Subject& s : subjects) {
    for (const char* sub : {"/state", "/ctlstate", "/data", "/keys"}) {
      RETURN_IF_ERROR(MakeDirs(s.dir + sub, 0700));
    }
  }
  for (int i = 0; i < f.starts; ++i) {
    for (size_t k = 0; k < subjects.size(); ++k) {
      RETURN_IF_ERROR(MeasureStartup(subjects[(i + k) % subjects.size()]));
    }
  }
  std::vector<Running> running(subjects.size());
  absl::Status status;
  for (size_t k = 0; k < subjects.size() && status.ok(); ++k) {
    status = StartWithVolume(subjects[k], running[k]);
  }
  for (int round = 0; round < f.rounds && status.ok(); ++round) {
    for (size_t k = 0; k < subjects.size() && status.ok(); ++k) {
      const size_t which = (round + k) % subjects.size();
      status = MeasureCalls(subjects[which], running[which], f.calls);
    }
  }
  for (size_t k = 0; k < subjects.size(); ++k) {
    if (running[k].node) subjects[k].peak_kib = ReadMemory(running[k].node->pid()).hwm_kib;
    StopWithVolume(running[k]);
  }
  RETURN_IF_ERROR(status);
  Report(f, subjects);
  return absl::OkStatus();
}

}  // namespace
}  // namespace rbdcsi

int main(int argc, char** argv) {
  rbdcsi::RpcFlags flags;
  CLI::App app{"rpc_bench: footprint and RPC overhead of rbdcsi's node plugin vs a reference"};
  app.add_option("--rbdcsi", flags.rbdcsi, "The rbdcsi binary")->capture_default_str();
  app.add_option("--hostpath", flags.hostpath, "csi-driver-host-path's hostpathplugin binary");
  app.add_option("--hostpath-label", flags.hostpath_label, "Its name in the report")
      ->capture_default_str();
  app.add_option("--starts", flags.starts, "Starts per plugin")->capture_default_str();
  app.add_option("--calls", flags.calls, "Calls of each kind per round")->capture_default_str();
  app.add_option("--rounds", flags.rounds, "Rounds")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "rpc_bench: must run as root (mounts, loop devices)\n");
    return 2;
  }
  flags.rbdcsi = std::filesystem::absolute(flags.rbdcsi).string();
  if (!flags.hostpath.empty()) flags.hostpath = std::filesystem::absolute(flags.hostpath).string();
  char tmpl[] = "/tmp/rbdcsi-rpcbench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::perror("rpc_bench: mkdtemp");
    return 2;
  }
  const std::string dir = tmpl;
  return rbdcsi::RunSupervised(
      "rpc_bench", [&] { return rbdcsi::RunWorker(flags, dir); },
      [&] {
        rbdcsi::DetachLoopDevicesUnder(dir, "rpc_bench");
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      });
}
