// Command-line flags of `rbdcsi`, kept apart from main() so they can be tested.
#ifndef RBDCSI_CMD_FLAGS_H_
#define RBDCSI_CMD_FLAGS_H_

#include <chrono>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace rbdcsi {

struct ServeFlags {
  std::string endpoint = "unix:///csi/csi.sock";
  std::string node_id;  // empty: the host name
  std::string driver_name = "rbd.rbdcsi.dev";
  std::string state_dir = "/var/lib/rbdcsi/state";
  std::string data_dir = "/var/lib/rbdcsi/data";
  std::string kubelet_dir = "/var/lib/kubelet";  // every staging and target path lies under it
  std::string log_level = "info";
  std::string log_format = "text";
  int grace_seconds = 10;
  bool no_node = false;        // serve without the Node service (controller-only deployment)
  bool no_controller = false;  // serve without the Controller service (node-only deployment)
  std::string default_mapper = "loop";            // for volumes whose context names no mapper
  std::string rbd_program = "rbd";                // the rbd CLI the krbd mapper runs
  std::string key_dir = "/run/rbdcsi/keys";       // tmpfs directory for per-call cephx key files
  double unstage_wait_seconds = 5;                // budget for holders that release by themselves
  std::vector<std::string> reclaim_stale_mounts;  // commands whose stale copies may be unmounted
  bool release_private_copies = true;             // remove the staging dir to detach copies on it
  std::string metrics_address;    // HOST:PORT or :PORT for Prometheus metrics; empty: none
  std::string cluster_config;     // JSON array of Ceph clusters; empty: loop backend only
  int ceph_timeout_seconds = 10;  // bound of every librados call
  std::string fuse_dir = "/run/rbdcsi/fuse";  // the fuse mapper's per-volume directories
  std::string rbd_fuse_program = "rbd-fuse";
  std::string registration_dir;           // the kubelet's plugins_registry; empty: do not register
  std::string kubelet_registration_path;  // the CSI socket as the kubelet sees it; empty: ours
  std::string cri_endpoint;  // the container runtime's CRI socket; empty: holders are not named

  // Filled in by ValidateServeFlags.
  std::string socket_path;
  std::string registration_socket_path;  // empty without --registration-dir
  std::string cri_socket_path;           // empty without --cri-endpoint
};

// Registers the `serve` flags on `app`.
void AddServeFlags(CLI::App& app, ServeFlags& flags);

// Checks values CLI11 cannot (endpoint form, driver name, absolute directories), fills defaults
// that need the system (host name) and socket_path. INVALID_ARGUMENT naming the flag otherwise.
absl::Status ValidateServeFlags(ServeFlags& flags);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_FLAGS_H_
