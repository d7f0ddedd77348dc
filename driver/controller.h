// csi.v1.Controller for the loop backend: volumes are sparse image files on this node, which
// makes rbdcsi a complete, self-contained driver for demos and e2e harnesses.
#ifndef RBDCSI_DRIVER_CONTROLLER_H_
#define RBDCSI_DRIVER_CONTROLLER_H_

#include <string>

#include "absl/status/status.h"
#include "csi.grpc.pb.h"
#include "driver/rpc.h"
#include "driver/volume_locks.h"
#include "rbd/loop_images.h"
#include "rbd/mapper.h"

namespace rbdcsi {

struct ControllerConfig {
  std::string default_pool = "rbd";
  uint64_t default_size = 1ULL << 30;  // when the capacity range asks for nothing
};

// Thread-safe; operations on one volume name or id are serialized by try-locks (ABORTED).
class ControllerOps {
 public:
  // `mapper` lists which images are mapped, so that DeleteVolume refuses volumes in use.
  ControllerOps(ControllerConfig config, LoopImageStore* images, Mapper* mapper, VolumeLocks* locks)
      : config_(std::move(config)), images_(images), mapper_(mapper), locks_(locks) {}

  // Idempotent by name: the same name and a compatible capacity return the same volume;
  // an incompatible capacity is ALREADY_EXISTS. OUT_OF_RANGE when limit < required.
  absl::Status CreateVolume(const csi::v1::CreateVolumeRequest& req,
                            csi::v1::CreateVolumeResponse* resp);
  // OK when the volume does not exist; FAILED_PRECONDITION while its image is mapped.
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
  static void GetCapabilities(csi::v1::ControllerGetCapabilitiesResponse* resp);

  // The image a volume id names: "pool/image". INVALID_ARGUMENT otherwise.
  static absl::StatusOr<ImageSpec> ImageOfVolumeId(const std::string& volume_id);
  // The image name a CreateVolume name maps to: the name itself when it is a valid image
  // name of at most 100 characters, otherwise a stable hash-based name.
  static std::string ImageNameFor(const std::string& volume_name);

 private:
  void FillVolume(const ImageSpec& spec, uint64_t size, csi::v1::Volume* volume) const;

  const ControllerConfig config_;
  LoopImageStore* images_;
  Mapper* mapper_;
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

 private:
  ControllerOps* ops_;
  CallTracker* tracker_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_CONTROLLER_H_
