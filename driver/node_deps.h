// What the node's parts are built from: configuration and the OS boundaries.
#ifndef RBDCSI_DRIVER_NODE_DEPS_H_
#define RBDCSI_DRIVER_NODE_DEPS_H_

#include <string>

#include "base/host_env.h"
#include "driver/busy_handler.h"
#include "driver/request_paths.h"
#include "driver/volume_locks.h"
#include "driver/volume_record.h"
#include "mounter/filesystem.h"
#include "mounter/mounter.h"
#include "rbd/cluster_config.h"
#include "rbd/mapper_registry.h"

namespace rbdcsi {

struct NodeConfig {
  std::string node_id;
  std::string default_mapper = "loop";  // when the volume context names none
  std::string default_pool = "rbd";
  PathRules paths;  // where staging and target paths may lie (serve --kubelet-dir)
};

// The OS boundaries the node logic works through; all must outlive the node's parts.
struct NodeDeps {
  Mounter* mounter = nullptr;
  Filesystems* filesystems = nullptr;
  const MapperRegistry* mappers = nullptr;
  RecordStore* records = nullptr;
  VolumeLocks* locks = nullptr;  // by volume id and by image
  BusyHandler* busy = nullptr;
  // The monitors of volumes whose context names a clusterID; may be null (no clusters).
  ClusterConfigSource* clusters = nullptr;
  HostEnv* env = nullptr;  // files, directories, statfs and the clock
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_NODE_DEPS_H_
