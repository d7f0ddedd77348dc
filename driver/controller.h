// csi.v1.Controller over an ImageStore: with the loop backend, volumes are sparse image files
// on this node, which makes rbdcsi a complete, self-contained driver for demos and e2e harnesses;
// with a Ceph store they are RBD images. The controller sees storage only through the
// ImageStoreProvider, and volume ids only through the codec of rbd/image_id.h.
#ifndef RBDCSI_DRIVER_CONTROLLER_H_
#define RBDCSI_DRIVER_CONTROLLER_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "csi.grpc.pb.h"
#include "driver/rpc.h"
#include "driver/volume_locks.h"
#include "rbd/image_id.h"
#include "rbd/image_store.h"

namespace rbdcsi {

struct ControllerConfig {
  std::string default_pool = "rbd";
  // The cluster of volumes whose parameters name no clusterID ("" is the loop backend).
  std::string default_cluster;
  uint64_t default_size = 1ULL << 30;  // when the capacity range asks for nothing
  // The mappers nodes may use for these images (the `mapper` parameter must be one of them);
  // the first is the default. The chosen one goes into the volume context; none when empty.
  std::vector<std::string> mappers;
  // The mapper of volumes whose parameters name none: default_mapper (empty: the first of
  // `mappers`) for images of no cluster, ceph_default_mapper for Ceph images.
  std::string default_mapper;
  std::string ceph_default_mapper = "krbd";

  std::string DefaultMapperFor(const ImageId& id) const {
    if (!id.cluster_id.empty()) return ceph_default_mapper;
    if (!default_mapper.empty() || mappers.empty()) return default_mapper;
    return mappers.front();
  }
};

// The Ceph credentials in a request's secrets (userID, userKey); empty when absent, which makes
// the store provider use the controller's own.
Credentials CredentialsOf(const google::protobuf::Map<std::string, std::string>& secrets);

// The I/O limits a VolumeAttributesClass (CreateVolume's or ControllerModifyVolume's
// mutable_parameters) asks for: rbd_qos_{iops,bps,read_iops,write_iops,read_bps,write_bps}_limit
// with whole numbers (0: no limit), keyed by the part between "rbd_qos_" and "_limit".
// INVALID_ARGUMENT for anything else.
absl::StatusOr<std::map<std::string, uint64_t>> ParseQosParameters(
    const google::protobuf::Map<std::string, std::string>& params);

// Thread-safe; operations on one image are serialized by the per-image try-lock (ABORTED).
class ControllerOps {
 public:
  // `stores` and `locks` must outlive the ControllerOps.
  ControllerOps(ControllerConfig config, ImageStoreProvider* stores, VolumeLocks* locks)
      : config_(std::move(config)), stores_(stores), locks_(locks) {}

  // Idempotent by name: the same name and a compatible capacity return the same volume;
  // an incompatible capacity is ALREADY_EXISTS. OUT_OF_RANGE when limit < required.
  absl::Status CreateVolume(const csi::v1::CreateVolumeRequest& req,
                            csi::v1::CreateVolumeResponse* resp);
  // OK when the volume does not exist; FAILED_PRECONDITION while its image is in use.
  absl::Status DeleteVolume(const csi::v1::DeleteVolumeRequest& req);
  absl::Status ValidateVolumeCapabilities(const csi::v1::ValidateVolumeCapabilitiesRequest& req,
                                          csi::v1::ValidateVolumeCapabilitiesResponse* resp);
  // ABORTED for a starting_token this service did not hand out.
  absl::Status ListVolumes(const csi::v1::ListVolumesRequest& req,
                           csi::v1::ListVolumesResponse* resp);
  absl::Status GetCapacity(const csi::v1::GetCapacityRequest& req,
                           csi::v1::GetCapacityResponse* resp);
  absl::Status ExpandVolume(const csi::v1::ControllerExpandVolumeRequest& req,
                            csi::v1::ControllerExpandVolumeResponse* resp);
  // Idempotent by name and source; ALREADY_EXISTS when the name is taken by a snapshot of
  // another volume, NOT_FOUND when the source volume does not exist.
  absl::Status CreateSnapshot(const csi::v1::CreateSnapshotRequest& req,
                              csi::v1::CreateSnapshotResponse* resp);
  // OK when the snapshot does not exist (or the id names nothing this plugin could make).
  absl::Status DeleteSnapshot(const csi::v1::DeleteSnapshotRequest& req);
  // By snapshot id, by source volume, or all; paginated like ListVolumes.
  absl::Status ListSnapshots(const csi::v1::ListSnapshotsRequest& req,
                             csi::v1::ListSnapshotsResponse* resp);
  // Sets the volume's I/O limits; NOT_FOUND for a missing volume, INVALID_ARGUMENT for
  // parameters ParseQosParameters rejects.
  absl::Status ModifyVolume(const csi::v1::ControllerModifyVolumeRequest& req,
                            csi::v1::ControllerModifyVolumeResponse* resp);
  static void GetCapabilities(csi::v1::ControllerGetCapabilitiesResponse* resp);

  // The image name a CreateVolume name maps to: the name itself when it is a valid image
  // name of at most min(100, max_length) characters, otherwise a stable hash-based name of at
  // most max_length (>= 19) characters.
  static std::string ImageNameFor(const std::string& volume_name, size_t max_length = 100);

 private:
  // The store and image a volume id names; NOT_FOUND when it names none (also for a cluster
  // this plugin does not serve), INVALID_ARGUMENT for junk.
  absl::StatusOr<std::pair<ImageStore*, ImageId>> Resolve(
      const std::string& volume_id, const google::protobuf::Map<std::string, std::string>& secrets);
  void FillVolume(const ImageInfo& info, const std::string& mapper, csi::v1::Volume* volume) const;
  // Makes `id` from the request's volume_content_source (a snapshot or a volume).
  absl::StatusOr<ImageInfo> CreateFromSource(const csi::v1::CreateVolumeRequest& req,
                                             ImageStore& store, const ImageId& id, uint64_t size);
  absl::StatusOr<std::vector<SnapshotInfo>> SnapshotsFor(const csi::v1::ListSnapshotsRequest& req);

  const ControllerConfig config_;
  ImageStoreProvider* stores_;
  VolumeLocks* locks_;
};

class ControllerService final : public csi::v1::Controller::Service {
 public:
  explicit ControllerService(ControllerOps* ops, CallTracker* tracker = nullptr)
      : ops_(ops), tracker_(tracker) {}

  grpc::Status CreateVolume(grpc::ServerContext*, const csi::v1::CreateVolumeRequest* req,
                            csi::v1::CreateVolumeResponse* resp) override;
  grpc::Status DeleteVolume(grpc::ServerContext*, const csi::v1::DeleteVolumeRequest* req,
                            csi::v1::DeleteVolumeResponse* resp) override;
  grpc::Status ValidateVolumeCapabilities(
      grpc::ServerContext*, const csi::v1::ValidateVolumeCapabilitiesRequest* req,
      csi::v1::ValidateVolumeCapabilitiesResponse* resp) override;
  grpc::Status ListVolumes(grpc::ServerContext*, const csi::v1::ListVolumesRequest* req,
                           csi::v1::ListVolumesResponse* resp) override;
  grpc::Status GetCapacity(grpc::ServerContext*, const csi::v1::GetCapacityRequest* req,
                           csi::v1::GetCapacityResponse* resp) override;
  grpc::Status ControllerGetCapabilities(grpc::ServerContext*,
                                         const csi::v1::ControllerGetCapabilitiesRequest* req,
                                         csi::v1::ControllerGetCapabilitiesResponse* resp) override;
  grpc::Status ControllerExpandVolume(grpc::ServerContext*,
                                      const csi::v1::ControllerExpandVolumeRequest* req,
                                      csi::v1::ControllerExpandVolumeResponse* resp) override;
  grpc::Status CreateSnapshot(grpc::ServerContext*, const csi::v1::CreateSnapshotRequest* req,
                              csi::v1::CreateSnapshotResponse* resp) override;
  grpc::Status DeleteSnapshot(grpc::ServerContext*, const csi::v1::DeleteSnapshotRequest* req,
                              csi::v1::DeleteSnapshotResponse* resp) override;
  grpc::Status ListSnapshots(grpc::ServerContext*, const csi::v1::ListSnapshotsRequest* req,
                             csi::v1::ListSnapshotsResponse* resp) override;
  grpc::Status ControllerModifyVolume(grpc::ServerContext*,
                                      const csi::v1::ControllerModifyVolumeRequest* req,
                                      csi::v1::ControllerModifyVolumeResponse* resp) override;

 private:
  ControllerOps* ops_;
  CallTracker* tracker_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_CONTROLLER_H_
