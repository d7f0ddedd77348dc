#include "bench/csi_client.h"

#include "absl/strings/str_cat.h"

namespace rbdcsi {
namespace {

csi::v1::VolumeCapability MountCapability() {
  csi::v1::VolumeCapability cap;
  cap.mutable_mount()->set_fs_type("ext4");
  cap.mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  return cap;
}

// Generous: under mass load a call legitimately waits for the kernel and for other calls.
void SetDeadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
}

}  // namespace

CsiClient::CsiClient(const std::string& socket_path)
    : channel_(grpc::CreateChannel("unix:" + socket_path, grpc::InsecureChannelCredentials())),
      node_(csi::v1::Node::NewStub(channel_)),
      controller_(csi::v1::Controller::NewStub(channel_)) {}

absl::StatusOr<csi::v1::Volume> CsiClient::Create(const std::string& name, int64_t bytes) {
  csi::v1::CreateVolumeRequest req;
  req.set_name(name);
  req.mutable_capacity_range()->set_required_bytes(bytes);
  *req.add_volume_capabilities() = MountCapability();
  csi::v1::CreateVolumeResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  grpc::Status st = controller_->CreateVolume(&ctx, req, &resp);
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        absl::StrCat("CreateVolume ", name, ": ", st.error_message()));
  }
  return resp.volume();
}

grpc::Status CsiClient::Delete(const std::string& volume_id) {
  csi::v1::DeleteVolumeRequest req;
  req.set_volume_id(volume_id);
  csi::v1::DeleteVolumeResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  return controller_->DeleteVolume(&ctx, req, &resp);
}

grpc::Status CsiClient::Stage(const csi::v1::Volume& volume, const std::string& staging) {
  csi::v1::NodeStageVolumeRequest req;
  req.set_volume_id(volume.volume_id());
  req.set_staging_target_path(staging);
  *req.mutable_volume_capability() = MountCapability();
  *req.mutable_volume_context() = volume.volume_context();
  csi::v1::NodeStageVolumeResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  return node_->NodeStageVolume(&ctx, req, &resp);
}

grpc::Status CsiClient::Publish(const csi::v1::Volume& volume, const std::string& staging,
                                const std::string& target) {
  csi::v1::NodePublishVolumeRequest req;
  req.set_volume_id(volume.volume_id());
  req.set_staging_target_path(staging);
  req.set_target_path(target);
  *req.mutable_volume_capability() = MountCapability();
  *req.mutable_volume_context() = volume.volume_context();
  csi::v1::NodePublishVolumeResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  return node_->NodePublishVolume(&ctx, req, &resp);
}

grpc::Status CsiClient::Unpublish(const std::string& volume_id, const std::string& target) {
  csi::v1::NodeUnpublishVolumeRequest req;
  req.set_volume_id(volume_id);
  req.set_target_path(target);
  csi::v1::NodeUnpublishVolumeResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  return node_->NodeUnpublishVolume(&ctx, req, &resp);
}

grpc::Status CsiClient::Unstage(const std::string& volume_id, const std::string& staging) {
  csi::v1::NodeUnstageVolumeRequest req;
  req.set_volume_id(volume_id);
  req.set_staging_target_path(staging);
  csi::v1::NodeUnstageVolumeResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  return node_->NodeUnstageVolume(&ctx, req, &resp);
}

grpc::Status CsiClient::Stats(const std::string& volume_id, const std::string& path) {
  csi::v1::NodeGetVolumeStatsRequest req;
  req.set_volume_id(volume_id);
  req.set_volume_path(path);
  csi::v1::NodeGetVolumeStatsResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  return node_->NodeGetVolumeStats(&ctx, req, &resp);
}

grpc::Status CsiClient::Capabilities() {
  csi::v1::NodeGetCapabilitiesResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  return node_->NodeGetCapabilities(&ctx, {}, &resp);
}

}  // namespace rbdcsi
