// The node's logic apart from gRPC: one object that owns its parts (finder, stager, publisher)
// and answers every csi.v1.Node call. NodeService (node_service.h) is its gRPC face.
#ifndef RBDCSI_DRIVER_NODE_H_
#define RBDCSI_DRIVER_NODE_H_

#include "absl/status/status.h"
#include "csi.pb.h"
#include "driver/node_deps.h"
#include "driver/publisher.h"
#include "driver/volume_finder.h"
#include "driver/volume_stager.h"

namespace rbdcsi {

// Thread-safe (see VolumeStager and Publisher for the locking).
class NodeOps {
 public:
  NodeOps(NodeConfig config, NodeDeps deps)
      : config_(std::move(config)),
        deps_(std::move(deps)),
        finder_(config_, deps_),
        stager_(config_, deps_, finder_),
        publisher_(config_, deps_, finder_) {}
  NodeOps(const NodeOps&) = delete;
  NodeOps& operator=(const NodeOps&) = delete;

  // Contracts in VolumeStager and Publisher.
  absl::Status Stage(const csi::v1::NodeStageVolumeRequest& req) { return stager_.Stage(req); }
  absl::Status Unstage(const csi::v1::NodeUnstageVolumeRequest& req) {
    return stager_.Unstage(req);
  }
  absl::Status Publish(const csi::v1::NodePublishVolumeRequest& req) {
    return publisher_.Publish(req);
  }
  absl::Status Unpublish(const csi::v1::NodeUnpublishVolumeRequest& req) {
    return publisher_.Unpublish(req);
  }
  absl::Status GetVolumeStats(const csi::v1::NodeGetVolumeStatsRequest& req,
                              csi::v1::NodeGetVolumeStatsResponse* resp) {
    return publisher_.GetVolumeStats(req, resp);
  }
  absl::Status Expand(const csi::v1::NodeExpandVolumeRequest& req,
                      csi::v1::NodeExpandVolumeResponse* resp) {
    return publisher_.Expand(req, resp);
  }
  void GetInfo(csi::v1::NodeGetInfoResponse* resp) const { resp->set_node_id(config_.node_id); }
  static void GetCapabilities(csi::v1::NodeGetCapabilitiesResponse* resp);

 private:
  const NodeConfig config_;
  const NodeDeps deps_;
  const VolumeFinder finder_;
  VolumeStager stager_;
  Publisher publisher_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_NODE_H_
