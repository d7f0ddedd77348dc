#include "cmd/flags.h"

#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "cmd/mappers.h"
#include "driver/endpoint.h"
#include "driver/registration.h"

namespace rbdcsi {
namespace {

// The server itself: its socket, identity, directories, logging and shutdown.
void AddServerFlags(CLI::App& app, ServeFlags& flags) {
  app.add_option("--endpoint", flags.endpoint, "CSI socket, unix:///path/csi.sock")
      ->capture_default_str();
  app.add_option("--nodeid", flags.node_id, "Node id reported to the CO (default: host name)");
  app.add_option("--drivername", flags.driver_name, "CSI driver name")->capture_default_str();
  app.add_option("--state-dir", flags.state_dir,
                 "Directory for durable per-volume records (never inside a staging path)")
      ->capture_default_str();
  app.add_option("--data-dir", flags.data_dir, "Directory holding the loop backend's images")
      ->capture_default_str();
  app.add_option("--kubelet-dir", flags.kubelet_dir,
                 "The kubelet's root directory: every staging and target path must lie under it, "
                 "reached without a symlink")
      ->capture_default_str();
  app.add_option("--log-level", flags.log_level, "trace|debug|info|warn|error")
      ->capture_default_str();
  app.add_option("--log-format", flags.log_format, "text|json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--grace-period", flags.grace_seconds,
                 "Seconds calls in flight may take to finish after SIGTERM")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  app.add_flag("--no-node", flags.no_node, "Do not serve the Node service");
  app.add_flag("--no-controller", flags.no_controller,
               "Do not serve the Controller service (the loop backend's provisioner)");
}

// How the node maps images and what an unstage does about holders.
void AddNodeFlags(CLI::App& app, ServeFlags& flags) {
  app.add_option("--default-mapper", flags.default_mapper,
                 "Mapper for volumes whose context names none: loop (embedded) or krbd")
      ->check(CLI::IsMember(MapperNames()))
      ->capture_default_str();
  app.add_option("--rbd-program", flags.rbd_program, "The rbd CLI the krbd mapper runs")
      ->capture_default_str();
  app.add_option("--key-dir", flags.key_dir,
                 "Directory (a tmpfs) for the per-call cephx key files of the krbd mapper")
      ->capture_default_str();
  app.add_option("--unstage-wait", flags.unstage_wait_seconds,
                 "Seconds NodeUnstageVolume waits for holders that release by themselves "
                 "(propagated copies, exiting processes) before failing")
      ->check(CLI::Range(0.0, 60.0))
      ->capture_default_str();
  app.add_option("--release-private-copies", flags.release_private_copies,
                 "After the host unmount, remove the staging directory when the only holders are "
                 "copies of its mount in other mount namespaces, so the kernel detaches them "
                 "(false: refuse instead)")
      ->capture_default_str();
  app.add_option("--reclaim-stale-mounts", flags.reclaim_stale_mounts,
                 "Commands (e.g. node_exporter) whose stale private copies of a staging mount "
                 "may be unmounted inside their own mount namespace; off by default")
      ->delimiter(',');
}

// What serve talks to besides the CO: Prometheus, Ceph clusters, rbd-fuse, the kubelet's
// registration, the container runtime.
void AddIntegrationFlags(CLI::App& app, ServeFlags& flags) {
  app.add_option("--metrics-address", flags.metrics_address,
                 "Serve Prometheus metrics at http://ADDRESS/metrics (HOST:PORT, or :PORT for "
                 "every interface); off by default");
  app.add_option("--cluster-config", flags.cluster_config,
                 "JSON array of Ceph clusters (clusterID, monitors, rbd.radosNamespace, "
                 "controllerCredentials); re-read when it changes");
  app.add_option("--ceph-timeout", flags.ceph_timeout_seconds,
                 "Seconds a Ceph cluster may take to answer before a call fails UNAVAILABLE")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  app.add_option("--fuse-dir", flags.fuse_dir,
                 "Directory (a tmpfs) for the fuse mapper's per-volume rbd-fuse mounts")
      ->capture_default_str();
  app.add_option("--rbd-fuse-program", flags.rbd_fuse_program, "The rbd-fuse the fuse mapper runs")
      ->capture_default_str();
  app.add_option("--registration-dir", flags.registration_dir,
                 "Serve the kubelet plugin-registration API on a socket in this directory "
                 "(the kubelet's plugins_registry), so no registrar sidecar is needed; off by "
                 "default");
  app.add_option("--kubelet-registration-path", flags.kubelet_registration_path,
                 "The CSI socket's path as the kubelet sees it, when it differs from --endpoint "
                 "(a container with its own view of the file system); default: --endpoint");
  app.add_option("--cri-endpoint", flags.cri_endpoint,
                 "The container runtime's CRI socket (unix:///run/containerd/containerd.sock): "
                 "busy errors then name a holder's pod (namespace/name) and container; off by "
                 "default");
}

}  // namespace

void AddServeFlags(CLI::App& app, ServeFlags& flags) {
  // In this order in --help.
  AddServerFlags(app, flags);
  AddNodeFlags(app, flags);
  AddIntegrationFlags(app, flags);
}

absl::Status ValidateServeFlags(ServeFlags& flags) {
  absl::StatusOr<std::string> socket = ParseUnixEndpoint(flags.endpoint);
  if (!socket.ok()) return Annotate(socket.status(), "--endpoint");
  flags.socket_path = *socket;
  RETURN_IF_ERROR(Annotate(ValidateDriverName(flags.driver_name), "--drivername"));
  if (!absl::StartsWith(flags.key_dir, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--key-dir: '", flags.key_dir, "' must be an absolute path"));
  }
  for (const auto& [name, dir] :
       {std::pair<const char*, std::string*>{"--state-dir", &flags.state_dir},
        {"--data-dir", &flags.data_dir},
        {"--kubelet-dir", &flags.kubelet_dir},
        {"--fuse-dir", &flags.fuse_dir}}) {
    if (!absl::StartsWith(*dir, "/")) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": '", *dir, "' must be an absolute path"));
    }
  }
  if (flags.no_node && flags.no_controller) {
    return absl::InvalidArgumentError(
        "--no-node and --no-controller together leave nothing to serve");
  }
  if (!flags.registration_dir.empty()) {
    absl::StatusOr<std::string> reg =
        RegistrationSocketPath(flags.registration_dir, flags.driver_name);
    if (!reg.ok()) return Annotate(reg.status(), "--registration-dir");
    flags.registration_socket_path = *reg;
  }
  if (!flags.cri_endpoint.empty()) {
    absl::StatusOr<std::string> cri = ParseUnixEndpoint(flags.cri_endpoint);
    if (!cri.ok()) return Annotate(cri.status(), "--cri-endpoint");
    flags.cri_socket_path = *cri;
  }
  if (!flags.kubelet_registration_path.empty() &&
      !absl::StartsWith(flags.kubelet_registration_path, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("--kubelet-registration-path: '",
                                                   flags.kubelet_registration_path,
                                                   "' must be an absolute path"));
  }
  if (flags.node_id.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) return ErrnoToStatus(errno, "reading host name");
    flags.node_id = host;
  }
  if (flags.node_id.size() > 128) {
    return absl::InvalidArgumentError("--nodeid: at most 128 bytes (CSI limit)");
  }
  return absl::OkStatus();
}

}  // namespace rbdcsi
