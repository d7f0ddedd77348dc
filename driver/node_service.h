// csi.v1.Node over gRPC: each method runs the NodeOps call through RunRpc (one log line, the
// status converted one to one). No logic lives here.
#ifndef RBDCSI_DRIVER_NODE_SERVICE_H_
#define RBDCSI_DRIVER_NODE_SERVICE_H_

#include "csi.grpc.pb.h"
#include "driver/node.h"
#include "driver/rpc.h"

namespace rbdcsi {

class NodeService final : public csi::v1::Node::Service {
 public:
  // `ops` (and `tracker`, when given) must outlive the service.
  explicit NodeService(NodeOps* ops, CallTracker* tracker = nullptr)
      : ops_(ops), tracker_(tracker) {}

  grpc::Status NodeStageVolume(grpc::ServerContext*, const csi::v1::NodeStageVolumeRequest* req,
                               csi::v1::NodeStageVolumeResponse* resp) override;
  grpc::Status NodeUnstageVolume(grpc::ServerContext*, const csi::v1::NodeUnstageVolumeRequest* req,
                                 csi::v1::NodeUnstageVolumeResponse* resp) override;
  grpc::Status NodePublishVolume(grpc::ServerContext*, const csi::v1::NodePublishVolumeRequest* req,
                                 csi::v1::NodePublishVolumeResponse* resp) override;
  grpc::Status NodeUnpublishVolume(grpc::ServerContext*,
                                   const csi::v1::NodeUnpublishVolumeRequest* req,
                                   csi::v1::NodeUnpublishVolumeResponse* resp) override;
  grpc::Status NodeGetVolumeStats(grpc::ServerContext*,
                                  const csi::v1::NodeGetVolumeStatsRequest* req,
                                  csi::v1::NodeGetVolumeStatsResponse* resp) override;
  grpc::Status NodeExpandVolume(grpc::ServerContext*, const csi::v1::NodeExpandVolumeRequest* req,
                                csi::v1::NodeExpandVolumeResponse* resp) override;
  grpc::Status NodeGetCapabilities(grpc::ServerContext*,
                                   const csi::v1::NodeGetCapabilitiesRequest* req,
                                   csi::v1::NodeGetCapabilitiesResponse* resp) override;
  grpc::Status NodeGetInfo(grpc::ServerContext*, const csi::v1::NodeGetInfoRequest* req,
                           csi::v1::NodeGetInfoResponse* resp) override;

 private:
  NodeOps* ops_;
  CallTracker* tracker_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_NODE_SERVICE_H_
