#include "cmd/serve.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/command.h"
#include "base/file_util.h"
#include "base/host_env.h"
#include "base/logging.h"
#include "base/version.h"
#include "cmd/image_stores.h"
#include "cmd/mappers.h"
#include "cmd/state_dir_lock.h"
#include "driver/busy_handler.h"
#include "driver/controller.h"
#include "driver/cri_namer.h"
#include "driver/holder_busy_handler.h"
#include "driver/identity.h"
#include "driver/node_service.h"
#include "driver/registration.h"
#include "driver/rpc_metrics.h"
#include "driver/server.h"
#include "driver/volume_locks.h"
#include "driver/volume_record.h"
#include "holders/holders.h"
#include "holders/ns_unmount.h"
#include "holders/procfs.h"
#include "metrics/command_runner.h"
#include "metrics/prometheus_metrics.h"
#include "mounter/filesystem.h"
#include "mounter/mounter.h"
#include "rbd/cluster_config.h"
#include "rbd/key_file.h"
#include "rbd/loop_images.h"
#include "rbd/mapper_registry.h"

namespace rbdcsi {
namespace {

// How long after the grace period serve waits for cancelled calls to return.
constexpr std::chrono::seconds kShutdownMargin(2);

MapperRegistry* NewMappers(const ServeFlags& flags, CommandRunner* runner) {
  auto* registry = new MapperRegistry;
  if (absl::Status st = RegisterMappers({flags.data_dir, flags.rbd_program, flags.key_dir, runner,
                                         flags.fuse_dir, flags.rbd_fuse_program},
                                        registry);
      !st.ok()) {
    Logger("server")->critical("{}", st.message());
    std::abort();  // a programming error in the mapper table
  }
  return registry;
}

// The loop backend's mapper: the loop image store lists its devices as the images' watchers.
Mapper* LoopMapperOf(const MapperRegistry& mappers) {
  absl::StatusOr<Mapper*> loop = mappers.Find("loop");
  return loop.ok() ? *loop : nullptr;
}

// The processes a volume's mapper runs to serve its device: never holders.
std::function<std::vector<pid_t>(const VolumeRecord&)> ServersOf(const MapperRegistry& mappers) {
  return [&mappers](const VolumeRecord& record) {
    absl::StatusOr<Mapper*> mapper = mappers.Find(record.mapper);
    return mapper.ok() ? (*mapper)->Servers(record.device) : std::vector<pid_t>{};
  };
}

// Every real OS implementation is built here and nowhere else.
struct Runtime {
  Runtime(const ServeFlags& flags, Metrics& metrics,
          std::unique_ptr<ClusterConfigSource> cluster_config)
      : env(NewRealHostEnv()),
        clusters(std::move(cluster_config)),
        real_runner(NewRealCommandRunner()),
        runner(NewMeasuredCommandRunner(real_runner.get(), metrics)),
        mounter(NewRealMounter()),
        filesystems(NewRealFilesystems(*runner)),
        mappers(NewMappers(flags, runner.get())),
        images(flags.data_dir, LoopMapperOf(*mappers)),
        stores(NewImageStoreProvider(flags, clusters.get(), &images)),
        records(flags.state_dir + "/volumes", RecordStore::Listing::kOwned),
        procfs(NewRealProcFs()),
        scanner(*procfs),
        ns_unmounter(NewRealNamespaceUnmounter()),
        busy(
            HolderBusyConfig{
                std::chrono::milliseconds(static_cast<int64_t>(flags.unstage_wait_seconds * 1000)),
                {flags.reclaim_stale_mounts.begin(), flags.reclaim_stale_mounts.end()},
                flags.release_private_copies,
                ServersOf(*mappers)},
            &scanner, ns_unmounter.get(), env.get(), metrics) {}

  std::unique_ptr<HostEnv> env;
  std::unique_ptr<ClusterConfigSource> clusters;
  std::unique_ptr<CommandRunner> real_runner;
  std::unique_ptr<CommandRunner> runner;  // counts and times every command real_runner runs
  std::unique_ptr<Mounter> mounter;
  std::unique_ptr<Filesystems> filesystems;
  std::unique_ptr<MapperRegistry> mappers;
  LoopImageStore images;
  std::unique_ptr<ImageStoreProvider> stores;  // the loop store (and Ceph clusters)
  RecordStore records;
  VolumeLocks locks;             // node operations, by volume id and by image
  VolumeLocks controller_locks;  // controller operations, by image
  std::unique_ptr<ProcFs> procfs;
  HolderScanner scanner;
  std::unique_ptr<NamespaceUnmounter> ns_unmounter;
  HolderBusyHandler busy;
};

// Record steps counted when Prometheus scrapes; a record that cannot be read is not counted.
VolumesByStep VolumesByStepIn(std::string dir) {
  return [dir = std::move(dir)] {
    std::map<std::string, int> counts;
    for (StageStep step :
         {StageStep::kMapping, StageStep::kMapped, StageStep::kStaged, StageStep::kUnmounted}) {
      counts[std::string(StageStepName(step))] = 0;
    }
    absl::StatusOr<std::vector<VolumeRecord>> records = RecordStore(dir).List();
    if (records.ok()) {
      for (const VolumeRecord& r : *records) ++counts[std::string(StageStepName(r.step))];
    }
    return counts;
  };
}

NodeDeps NodeDepsOf(Runtime& rt) {
  NodeDeps deps;
  deps.mounter = rt.mounter.get();
  deps.filesystems = rt.filesystems.get();
  deps.mappers = rt.mappers.get();
  deps.records = &rt.records;
  deps.locks = &rt.locks;
  deps.busy = &rt.busy;
  deps.clusters = rt.clusters.get();
  deps.env = rt.env.get();
  return deps;
}

NodeConfig NodeConfigOf(const ServeFlags& flags) {
  NodeConfig config;
  config.node_id = flags.node_id;
  config.default_mapper = flags.default_mapper;
  config.paths.kubelet_dir = flags.kubelet_dir;
  config.paths.protected_dirs = {flags.state_dir, flags.data_dir, flags.key_dir, flags.fuse_dir};
  return config;
}

ControllerConfig ControllerConfigOf() {
  ControllerConfig config;
  // Loop images map with the loop mapper; Ceph images by default with krbd.
  config.mappers = MapperNames();
  config.default_mapper = "loop";
  config.ceph_default_mapper = "krbd";
  return config;
}

// The three CSI services over the runtime, reporting their calls to the server's tracker.
struct Services {
  Services(const ServeFlags& flags, Runtime& rt, CallTracker* tracker)
      : identity({flags.driver_name, kVersion, flags.state_dir, !flags.no_controller}, tracker),
        node_ops(NodeConfigOf(flags), NodeDepsOf(rt)),
        node(&node_ops, tracker),
        controller_ops(ControllerConfigOf(), rt.stores.get(), &rt.controller_locks),
        controller(&controller_ops, tracker) {}

  IdentityService identity;
  NodeOps node_ops;
  NodeService node;
  ControllerOps controller_ops;
  ControllerService controller;
};

// The state and data directories, made root's alone; the state directory locked for as long as
// the returned descriptor is open. Logs why it failed.
absl::StatusOr<UniqueFd> PrepareStateDirs(const ServeFlags& flags) {
  for (const std::string& dir : {flags.state_dir, flags.state_dir + "/volumes", flags.data_dir}) {
    if (absl::Status st = MakeDirs(dir, 0700); !st.ok()) {
      Logger("server")->error("{}", st.message());
      return st;
    }
    chmod(dir.c_str(), 0700);  // records and images are root's alone, also in an existing dir
  }
  // One server per state directory, for the server's whole life: two would undo each other's
  // stages and race on the same records.
  absl::StatusOr<UniqueFd> state_lock = LockStateDir(flags.state_dir, "serve");
  if (!state_lock.ok()) {
    Logger("server")->error(
        "{}; refusing to start: two servers on one state directory would undo each other's work",
        state_lock.status().message());
  }
  return state_lock;
}

void CheckKeyDir(const std::string& key_dir) {
  if (int stale = KeyFile::RemoveStale(key_dir); stale > 0) {
    Logger("server")->warn("removed {} key file(s) left under {} by an earlier run", stale,
                           key_dir);
  }
  if (std::filesystem::exists(key_dir) && !KeyFile::InMemory(key_dir)) {
    Logger("server")->warn("--key-dir {} is not on tmpfs: cephx key files could reach a disk",
                           key_dir);
  }
}

// SIGTERM and SIGINT, blocked in this thread (and so in every thread it starts from now on), to be
// taken synchronously with sigwait.
sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

absl::StatusOr<std::unique_ptr<ClusterConfigSource>> LoadClusterConfig(const std::string& path) {
  if (path.empty()) return std::make_unique<ClusterConfigSource>();
  return ClusterConfigSource::Load(path);
}

// Starts Prometheus's endpoint and the kubelet registration when asked for; logs why not.
absl::StatusOr<std::unique_ptr<KubeletRegistration>> StartExtras(const ServeFlags& flags,
                                                                 PrometheusMetrics* prometheus) {
  auto log = Logger("server");
  if (prometheus != nullptr) {
    absl::StatusOr<int> port = prometheus->Serve(flags.metrics_address);
    if (!port.ok()) {
      log->error("{}", port.status().message());
      return port.status();
    }
    log->info("serving metrics on {} (port {})", flags.metrics_address, *port);
  }
  log->info("rbdcsi {} serving driver {} for node {} ({}{}), unstage wait {} s{}", kVersion,
            flags.driver_name, flags.node_id, flags.no_node ? "" : "node ",
            flags.no_controller ? "" : "controller", flags.unstage_wait_seconds,
            flags.reclaim_stale_mounts.empty()
                ? ""
                : ", reclaiming stale mounts of " + absl::StrJoin(flags.reclaim_stale_mounts, ","));
  if (flags.registration_socket_path.empty()) return nullptr;
  auto registration = std::make_unique<KubeletRegistration>(
      flags.registration_socket_path,
      RegistrationConfig{flags.driver_name,
                         flags.kubelet_registration_path.empty()
                             ? std::filesystem::absolute(flags.socket_path).string()
                             : flags.kubelet_registration_path});
  if (absl::Status st = registration->Start(); !st.ok()) {
    log->error("cannot serve kubelet registration: {}", st.message());
    return st;
  }
  log->info("kubelet registration served on {}", flags.registration_socket_path);
  return registration;
}

// Waits for SIGTERM or SIGINT, then stops taking calls and shuts the server down.
void ServeUntilStopped(const ServeFlags& flags, const sigset_t& stop_signals, Server& server,
                       KubeletRegistration* registration) {
  auto log = Logger("server");
  int sig = 0;
  sigwait(&stop_signals, &sig);
  log->info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  if (registration != nullptr) registration->Stop();  // the kubelet stops sending calls first
  // Calls still running after the grace period are cancelled, but a handler can be stuck
  // waiting for a child process; serve exits anyway, shortly after the grace period.
  std::thread([grace = std::chrono::seconds(flags.grace_seconds), key_dir = flags.key_dir, log] {
    std::this_thread::sleep_for(grace + kShutdownMargin);
    log->error("calls still running {} s after the grace period; exiting without them",
               kShutdownMargin.count());
    KeyFile::RemoveStale(key_dir);  // the stuck calls' key files
    log->flush();
    std::_Exit(1);
  }).detach();
  server.Shutdown();
}

}  // namespace

int ExecController(char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string path = (self.parent_path() / kControllerBinary).string();
  if (!ec) execv(path.c_str(), argv);
  std::cerr << "rbdcsi serve: the controller service is served by " << path << ", which "
            << (ec ? ec.message() : std::strerror(errno))
            << "; install it beside rbdcsi, or serve the node alone with --no-controller\n";
  return 2;
}

int RunServe(ServeFlags flags) {
  if (absl::Status st = ValidateServeFlags(flags); !st.ok()) {
    std::cerr << "rbdcsi serve: " << st.message() << "\n";
    return 2;
  }
  if (absl::Status st = InitLogging(flags.log_level, flags.log_format); !st.ok()) {
    std::cerr << "rbdcsi serve: --log-level/--log-format: " << st.message() << "\n";
    return 2;
  }
  absl::StatusOr<UniqueFd> state_lock = PrepareStateDirs(flags);
  if (!state_lock.ok()) return 1;
  CheckKeyDir(flags.key_dir);
  // Signals are taken synchronously by this thread; block them before gRPC starts its threads
  // so that none of those receives them.
  const sigset_t stop_signals = BlockStopSignals();
  absl::StatusOr<std::unique_ptr<ClusterConfigSource>> cluster_config =
      LoadClusterConfig(flags.cluster_config);
  if (!cluster_config.ok()) {
    std::cerr << "rbdcsi serve: --cluster-config: " << cluster_config.status().message() << "\n";
    return 2;
  }
  std::unique_ptr<CriContainerNamer> namer;  // outlives the scanner that uses it
  if (!flags.cri_socket_path.empty()) {
    namer = std::make_unique<CriContainerNamer>(flags.cri_socket_path);
  }
  std::unique_ptr<PrometheusMetrics> prometheus;
  if (!flags.metrics_address.empty()) {
    prometheus = std::make_unique<PrometheusMetrics>(VolumesByStepIn(flags.state_dir + "/volumes"));
  }
  Metrics& metrics = prometheus ? *prometheus : NullMetrics();
  Runtime rt(flags, metrics, *std::move(cluster_config));
  rt.scanner.set_container_namer(namer.get());
  if (int stale = rt.records.RemoveStaleTemporaries(); stale > 0) {
    Logger("server")->warn("removed {} temporary record file(s) an earlier run left", stale);
  }
  Server server({flags.socket_path, std::chrono::seconds(flags.grace_seconds)});
  server.tracker()->SetObserver(RpcMetricsObserver(metrics));
  Services services(flags, rt, server.tracker());
  server.AddService(&services.identity);
  if (!flags.no_node) server.AddService(&services.node);
  if (!flags.no_controller) server.AddService(&services.controller);
  if (absl::Status st = server.Start(); !st.ok()) {
    Logger("server")->error("cannot serve: {}", st.message());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<KubeletRegistration>> registration =
      StartExtras(flags, prometheus.get());
  if (!registration.ok()) {
    server.Shutdown();
    return 1;
  }
  ServeUntilStopped(flags, stop_signals, server, registration->get());
  return 0;
}

}  // namespace rbdcsi
