// The Ceph clusters this plugin serves: `serve --cluster-config FILE`, a JSON array in the shape
// ceph-csi users already have, e.g.
//   [{"clusterID": "c1", "monitors": ["10.0.0.1:6789"], "rbd": {"radosNamespace": ""},
//     "controllerCredentials": {"userID": "csi", "keyFile": "/etc/rbdcsi/c1.key"}}]
// `controllerCredentials` (rbdcsi's own key) is what ListVolumes and GetCapacity, whose requests
// carry no secrets, use; the key file must not be readable by group or others.
#ifndef RBDCSI_RBD_CLUSTER_CONFIG_H_
#define RBDCSI_RBD_CLUSTER_CONFIG_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rbdcsi {

struct ClusterConfig {
  std::string cluster_id;
  std::vector<std::string> monitors;  // "host:port" entries
  std::string rados_namespace;        // rbd.radosNamespace; empty: the pool's default one
  std::string controller_user;        // controllerCredentials.userID; empty: none configured
  std::string controller_key_file;    // controllerCredentials.keyFile

  // The monitors joined by ',' as librados and `rbd -m` take them.
  std::string MonitorList() const;
};

// Parses the file's text. INVALID_ARGUMENT naming the entry and field for anything malformed:
// not an array, a missing or invalid clusterID, a duplicate clusterID, no monitors, a monitor
// that is not host:port, unknown field types.
absl::StatusOr<std::vector<ClusterConfig>> ParseClusterConfig(std::string_view json);

// The cluster configuration from a file, re-read when the file changes (a ConfigMap update).
// Thread-safe.
class ClusterConfigSource {
 public:
  // An empty configuration: no clusters (the loop backend only).
  ClusterConfigSource() = default;

  // Reads and parses `path`; the error names the file and the problem.
  static absl::StatusOr<std::unique_ptr<ClusterConfigSource>> Load(const std::string& path);

  // The cluster with `cluster_id`, re-reading the file first if it changed since the last
  // look (at most once a second). A file that became invalid is logged once and the
  // configuration read before stays. NOT_FOUND naming the id when it is not configured.
  absl::StatusOr<ClusterConfig> Find(std::string_view cluster_id);

  // The configured cluster ids (after a reload check, as Find does).
  std::vector<std::string> Ids();

  // Reads the key file of the cluster's controllerCredentials. NOT_FOUND when none are
  // configured; PERMISSION_DENIED when the file is readable by group or others. The key is a
  // secret and never appears in the error.
  static absl::StatusOr<std::string> ReadControllerKey(const ClusterConfig& cluster);

  // Re-reads the file if it changed; returns the error of an invalid new version (the old
  // configuration stays). Find() calls this; tests call it directly.
  absl::Status Reload();

 private:
  // Reload() at most once a second, logging a rejected file. Needs mu_.
  void MaybeReload();

  struct FileStamp {
    ino_t inode = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp& o) const {
      return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };

  std::mutex mu_;
  std::string path_;
  std::vector<ClusterConfig> clusters_;
  FileStamp stamp_;
  std::optional<FileStamp> rejected_;  // a bad version already logged
  std::chrono::steady_clock::time_point last_check_{};
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_CLUSTER_CONFIG_H_
