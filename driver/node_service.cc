#include "driver/node_service.h"

#include "driver/rpc.h"

namespace rbdcsi {

grpc::Status NodeService::NodeStageVolume(grpc::ServerContext*,
                                          const csi::v1::NodeStageVolumeRequest* req,
                                          csi::v1::NodeStageVolumeResponse*) {
  return RunRpc(tracker_, "NodeStageVolume", *req, [&] { return ops_->Stage(*req); });
}

grpc::Status NodeService::NodeUnstageVolume(grpc::ServerContext*,
                                            const csi::v1::NodeUnstageVolumeRequest* req,
                                            csi::v1::NodeUnstageVolumeResponse*) {
  return RunRpc(tracker_, "NodeUnstageVolume", *req, [&] { return ops_->Unstage(*req); });
}

grpc::Status NodeService::NodePublishVolume(grpc::ServerContext*,
                                            const csi::v1::NodePublishVolumeRequest* req,
                                            csi::v1::NodePublishVolumeResponse*) {
  return RunRpc(tracker_, "NodePublishVolume", *req, [&] { return ops_->Publish(*req); });
}

grpc::Status NodeService::NodeUnpublishVolume(grpc::ServerContext*,
                                              const csi::v1::NodeUnpublishVolumeRequest* req,
                                              csi::v1::NodeUnpublishVolumeResponse*) {
  return RunRpc(tracker_, "NodeUnpublishVolume", *req, [&] { return ops_->Unpublish(*req); });
}

grpc::Status NodeService::NodeGetVolumeStats(grpc::ServerContext*,
                                             const csi::v1::NodeGetVolumeStatsRequest* req,
                                             csi::v1::NodeGetVolumeStatsResponse* resp) {
  return RunRpc(tracker_, "NodeGetVolumeStats", *req,
                [&] { return ops_->GetVolumeStats(*req, resp); });
}

grpc::Status NodeService::NodeExpandVolume(grpc::ServerContext*,
                                           const csi::v1::NodeExpandVolumeRequest* req,
                                           csi::v1::NodeExpandVolumeResponse* resp) {
  return RunRpc(tracker_, "NodeExpandVolume", *req, [&] { return ops_->Expand(*req, resp); });
}

grpc::Status NodeService::NodeGetCapabilities(grpc::ServerContext*,
                                              const csi::v1::NodeGetCapabilitiesRequest* req,
                                              csi::v1::NodeGetCapabilitiesResponse* resp) {
  return RunRpc(tracker_, "NodeGetCapabilities", *req, [&] {
    NodeOps::GetCapabilities(resp);
    return absl::OkStatus();
  });
}

grpc::Status NodeService::NodeGetInfo(grpc::ServerContext*, const csi::v1::NodeGetInfoRequest* req,
                                      csi::v1::NodeGetInfoResponse* resp) {
  return RunRpc(tracker_, "NodeGetInfo", *req, [&] {
    ops_->GetInfo(resp);
    return absl::OkStatus();
  });
}

}  // namespace rbdcsi
