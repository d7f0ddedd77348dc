// csi.v1.Node: stage, publish, unpublish, unstage, stats and expansion on this node.
#ifndef RBDCSI_DRIVER_NODE_H_
#define RBDCSI_DRIVER_NODE_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "csi.grpc.pb.h"
#include "driver/busy_handler.h"
#include "driver/rpc.h"
#include "driver/volume_locks.h"
#include "driver/volume_record.h"
#include "mounter/filesystem.h"
#include "mounter/mounter.h"
#include "rbd/image_id.h"
#include "rbd/mapper.h"
#include "rbd/mapper_registry.h"

namespace rbdcsi {

struct NodeConfig {
  std::string node_id;
  std::string default_mapper = "loop";  // when the volume context names none
  std::string default_pool = "rbd";
};

// The OS boundaries the node logic works through; all must outlive the NodeOps.
struct NodeDeps {
  Mounter* mounter = nullptr;
  Filesystems* filesystems = nullptr;
  const MapperRegistry* mappers = nullptr;
  RecordStore* records = nullptr;
  VolumeLocks* locks = nullptr;  // by volume id and by image
  BusyHandler* busy = nullptr;
};

// The node logic, apart from gRPC. Thread-safe: operations on one volume are serialized by
// the per-volume try-lock, stage and unstage also by the per-image try-lock, so that two
// volume ids naming one image never stage it twice (a concurrent second call gets ABORTED).
class NodeOps {
 public:
  NodeOps(NodeConfig config, NodeDeps deps) : config_(std::move(config)), deps_(std::move(deps)) {}

  // Maps the image, creates a filesystem if the device is blank and writable, mounts it at the
  // staging path. Idempotent; ALREADY_EXISTS when staged with incompatible arguments; NOT_FOUND
  // when the image does not exist. On failure, undoes what this call did.
  absl::Status Stage(const csi::v1::NodeStageVolumeRequest& req);

  // Unmounts the staging path if mounted and unmaps the device, using the volume record even
  // when the staging path is gone. OK when there is nothing left to undo.
  absl::Status Unstage(const csi::v1::NodeUnstageVolumeRequest& req);

  // Bind-mounts the staged filesystem (or the device, for block volumes) at the target path.
  // NOT_FOUND when the volume is not staged here.
  absl::Status Publish(const csi::v1::NodePublishVolumeRequest& req);

  // Unmounts and removes the target path; OK when it is already gone.
  absl::Status Unpublish(const csi::v1::NodeUnpublishVolumeRequest& req);

  absl::Status GetVolumeStats(const csi::v1::NodeGetVolumeStatsRequest& req,
                              csi::v1::NodeGetVolumeStatsResponse* resp);
  absl::Status Expand(const csi::v1::NodeExpandVolumeRequest& req,
                      csi::v1::NodeExpandVolumeResponse* resp);
  void GetInfo(csi::v1::NodeGetInfoResponse* resp) const;
  static void GetCapabilities(csi::v1::NodeGetCapabilitiesResponse* resp);

 private:
  absl::StatusOr<Mapper*> MapperFor(const std::string& name) const;
  // The image a stage request names: the volume context's clusterID/pool/radosNamespace/image
  // when it names an image, else the volume id through DecodeVolumeId (a bare "image" means
  // the default pool). For Ceph mappers without a clusterID the cluster comes from `monitors`.
  absl::StatusOr<ImageId> ImageOfRequest(const std::string& volume_id,
                                         const google::protobuf::Map<std::string, std::string>& ctx,
                                         const MapperTraits& traits) const;
  // The image a volume id alone names (unstage without a record), for `mapper`.
  absl::StatusOr<ImageId> ImageOfVolumeId(const std::string& volume_id,
                                          const MapperTraits& traits) const;
  // The identity the record's image had when staged (records of older versions lack the
  // cluster id of Ceph images; it is derived from the recorded monitors).
  ImageId ImageOfRecord(const VolumeRecord& record) const;
  // FAILED_PRECONDITION when a record of another volume id is for the same image (staged, or
  // an unfinished stage or unstage): one image is staged for one volume at a time. Callers
  // hold the image lock, so the answer stays true until they release it.
  absl::Status CheckNoOtherOwner(const VolumeRecord& record) const;
  absl::StatusOr<VolumeRecord> RecordFromRequest(const csi::v1::NodeStageVolumeRequest& req,
                                                 MapOptions* map_options) const;
  // OK while the record's device is still mapped with the same numbers and, for filesystem
  // volumes, mounted at the staging path; FAILED_PRECONDITION saying what is gone otherwise.
  absl::Status CheckStillStaged(const VolumeRecord& record) const;
  // The id of another volume whose record owns `device`, if any.
  absl::StatusOr<std::optional<std::string>> OtherOwner(const VolumeRecord& record,
                                                        const MappedDevice& device) const;
  absl::Status StageNew(VolumeRecord& record, const MapOptions& map_options, BusyBudget& budget);
  absl::Status MountStaged(const VolumeRecord& record);
  absl::Status UndoStaging(VolumeRecord& record, BusyBudget& budget);
  absl::Status UnmountAll(const std::string& path, VolumeRecord& record, BusyBudget& budget);
  absl::Status UnmapDevice(VolumeRecord& record, BusyBudget& budget);
  absl::StatusOr<std::optional<MappedDevice>> FindMapping(Mapper& mapper,
                                                          const VolumeRecord& record) const;
  absl::StatusOr<std::optional<VolumeRecord>> RecordFromMountTable(const std::string& volume_id,
                                                                   const std::string& path) const;
  // mapper.List(), except that a mapper unusable on this node (FAILED_PRECONDITION, e.g. no rbd
  // CLI) lists nothing instead of failing the search for a volume's device.
  absl::StatusOr<std::vector<MappedDevice>> ListUsable(Mapper& mapper) const;
  absl::StatusOr<std::optional<VolumeRecord>> RecordFromMappers(const std::string& volume_id) const;

  const NodeConfig config_;
  const NodeDeps deps_;
};

// The gRPC face of NodeOps; each method goes through RunRpc.
class NodeService final : public csi::v1::Node::Service {
 public:
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

#endif  // RBDCSI_DRIVER_NODE_H_
