// Bootstrapping and tearing down the single-node test cluster of rbdcsi-test-cluster.
#ifndef RBDCSI_TESTS_CEPH_CLUSTER_BOOTSTRAP_H_
#define RBDCSI_TESTS_CEPH_CLUSTER_BOOTSTRAP_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rbdcsi {

struct ClusterOptions {
  std::string dir;  // absolute; everything the cluster writes lives below it
  std::string pool = "rbd";
  std::string cluster_id = "rbdcsi-test";  // the clusterID in cluster-config.json
  bool with_mgr = true;                    // without a mgr, pool statistics read as zero
};

// Writes the configuration and keys, starts mon, mgr and OSD (the OSD is registered, started
// and the pool created through one librados client) and returns once the pool is initialized
// for RBD. A cluster this program left in `dir` earlier is stopped first. On error the
// daemons started so far keep running: the caller stops them (StopCluster).
absl::Status StartCluster(const ClusterOptions& options);

// SIGKILLs the daemons named by `dir`/run/*.pid that run with `dir`/ceph.conf, waits for them
// to exit, and removes `dir` when `remove_dir` (only a directory StartCluster made).
void StopCluster(const std::string& dir, bool remove_dir);

// The KEY=VALUE lines of an env file, comments and blank lines dropped.
absl::StatusOr<std::vector<std::string>> ReadEnvFile(const std::string& path);

// A new cephx secret (base64 of the CryptoKey encoding: type AES, creation time, 16 random
// bytes), as `ceph-authtool --gen-print-key` prints it.
std::string NewCephxKey();

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_CEPH_CLUSTER_BOOTSTRAP_H_
