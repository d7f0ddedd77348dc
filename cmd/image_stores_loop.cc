// rbdcsi: no Ceph client library. Its controller code only ever sees the loop store (and is
// not served: `serve` hands the controller service to rbdcsi-controller).
#include "cmd/image_stores.h"

namespace rbdcsi {

bool ServesController() { return false; }

std::unique_ptr<ImageStoreProvider> NewImageStoreProvider(const ServeFlags&, ClusterConfigSource*,
                                                          ImageStore* loop) {
  return std::make_unique<SingleStoreProvider>(loop);
}

}  // namespace rbdcsi
