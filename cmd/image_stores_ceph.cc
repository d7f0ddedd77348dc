// rbdcsi-controller: the loop store and the Ceph clusters (librados/librbd).
#include "ceph/ceph_store_provider.h"
#include "cmd/image_stores.h"

namespace rbdcsi {

bool ServesController() { return true; }

std::unique_ptr<ImageStoreProvider> NewImageStoreProvider(const ServeFlags& flags,
                                                          ClusterConfigSource* clusters,
                                                          ImageStore* loop) {
  return std::make_unique<CephStoreProvider>(
      clusters, loop, CephClientOptions{std::chrono::seconds(flags.ceph_timeout_seconds)});
}

}  // namespace rbdcsi
