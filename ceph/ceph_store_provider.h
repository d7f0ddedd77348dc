// Hands out the image store of each configured Ceph cluster, one per (cluster, cephx user),
// with the loop backend's store for volumes of no cluster.
#ifndef RBDCSI_CEPH_CEPH_STORE_PROVIDER_H_
#define RBDCSI_CEPH_CEPH_STORE_PROVIDER_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "ceph/ceph_image_store.h"
#include "rbd/cluster_config.h"
#include "rbd/image_store.h"

namespace rbdcsi {

// Thread-safe. Stores live as long as the provider; a store's session is re-established when
// it was lost or the credentials or monitors changed.
class CephStoreProvider : public ImageStoreProvider {
 public:
  // `clusters` and `loop` (the store for the empty cluster id; may be null) outlive this.
  CephStoreProvider(ClusterConfigSource* clusters, ImageStore* loop, CephClientOptions options)
      : clusters_(clusters), loop_(loop), options_(options) {}

  // Credentials with neither user nor key (requests that carry no secrets, like ListVolumes
  // and GetCapacity) use the cluster's controllerCredentials from the cluster config.
  // INVALID_ARGUMENT when only one of user and key is given, or none and the cluster has no
  // controllerCredentials; NOT_FOUND for an unknown cluster; UNAVAILABLE or
  // PERMISSION_DENIED from connecting.
  absl::StatusOr<ImageStore*> For(std::string_view cluster_id,
                                  const Credentials& credentials) override;
  // "" when there is a loop store, then the clusters of the cluster config.
  std::vector<std::string> ClusterIds() override;

 private:
  ClusterConfigSource* const clusters_;
  ImageStore* const loop_;
  const CephClientOptions options_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<CephImageStore>> stores_;  // by cluster "\n" user
};

}  // namespace rbdcsi

#endif  // RBDCSI_CEPH_CEPH_STORE_PROVIDER_H_
