// The controller's image stores. Each binary links one of two implementations:
// image_stores_ceph.cc goes into rbdcsi-controller (the loop store and the Ceph clusters of the
// cluster config, through librados/librbd), image_stores_loop.cc into rbdcsi (no Ceph client
// library at all), so that the node plugin, which runs on every node, never loads them: they
// were two thirds of its memory and most of its start-up.
#ifndef RBDCSI_CMD_IMAGE_STORES_H_
#define RBDCSI_CMD_IMAGE_STORES_H_

#include <memory>

#include "cmd/flags.h"
#include "rbd/cluster_config.h"
#include "rbd/image_store.h"

namespace rbdcsi {

// The executable that serves the controller service, next to rbdcsi.
inline constexpr char kControllerBinary[] = "rbdcsi-controller";

// Whether this binary serves the controller service itself. rbdcsi does not: `rbdcsi serve`
// without --no-controller executes kControllerBinary with the same arguments.
bool ServesController();

// The stores the controller uses. `clusters` and `loop` must outlive the provider.
std::unique_ptr<ImageStoreProvider> NewImageStoreProvider(const ServeFlags& flags,
                                                          ClusterConfigSource* clusters,
                                                          ImageStore* loop);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_IMAGE_STORES_H_
