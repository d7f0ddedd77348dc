// Finding a volume's image, device and owner: from the request, the volume record, the mount
// table and the mappers' own lists (DESIGN.md, NodeUnstageVolume step 2). Reads only.
#ifndef RBDCSI_DRIVER_VOLUME_FINDER_H_
#define RBDCSI_DRIVER_VOLUME_FINDER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "csi.pb.h"
#include "driver/node_deps.h"
#include "rbd/image_id.h"

namespace rbdcsi {

// Whether mount `m` is of device `d` (same major:minor).
bool SameDevice(const MountInfo& m, const MappedDevice& d);

// Thread-safe as its dependencies; callers hold the volume's (and image's) lock where the
// answer must stay true.
class VolumeFinder {
 public:
  VolumeFinder(const NodeConfig& config, const NodeDeps& deps) : config_(config), deps_(deps) {}

  // INVALID_ARGUMENT naming the registered mappers for an unknown name.
  absl::StatusOr<Mapper*> MapperFor(const std::string& name) const;

  // The image a stage request names: the volume context's clusterID/pool/radosNamespace/image
  // when it names an image, else the volume id through DecodeVolumeId (a bare "image" means
  // the default pool). For Ceph mappers without a clusterID the cluster comes from `monitors`.
  // INVALID_ARGUMENT for bad names or a cluster the mapper cannot map; NOT_FOUND for an id
  // naming no image.
  absl::StatusOr<ImageId> ImageOfRequest(const std::string& volume_id,
                                         const google::protobuf::Map<std::string, std::string>& ctx,
                                         const MapperTraits& traits) const;
  // The image a volume id alone names (unstage without a record), for a mapper's `traits`.
  absl::StatusOr<ImageId> ImageOfVolumeId(const std::string& volume_id,
                                          const MapperTraits& traits) const;
  // The identity the record's image had when staged (records of older versions lack the
  // cluster id of Ceph images; it is derived from the recorded monitors).
  ImageId ImageOfRecord(const VolumeRecord& record) const;

  // FAILED_PRECONDITION when a record of another volume id is for the same image (staged, or
  // an unfinished stage or unstage): one image is staged for one volume at a time. Callers
  // hold the image lock, so the answer stays true until they release it.
  absl::Status CheckNoOtherOwner(const VolumeRecord& record) const;
  // The id of another volume whose record owns `device`, if any.
  absl::StatusOr<std::optional<std::string>> OtherOwner(const VolumeRecord& record,
                                                        const MappedDevice& device) const;

  // The mapping of the record's image by `mapper`, preferring the recorded device.
  absl::StatusOr<std::optional<MappedDevice>> FindMapping(Mapper& mapper,
                                                          const VolumeRecord& record) const;
  // OK while the record's device is still mapped with the same numbers and, for filesystem
  // volumes, mounted at the staging path; FAILED_PRECONDITION saying what is gone otherwise.
  absl::Status CheckStillStaged(const VolumeRecord& record) const;
  // The same against `table`, a mount table the caller read (and uses for more).
  absl::Status CheckStillStaged(const VolumeRecord& record,
                                const std::vector<MountInfo>& table) const;

  // Without a record: what is mounted at `path` and which mapper owns it (nullopt when
  // nothing is mounted there; FAILED_PRECONDITION for a device no mapper knows).
  absl::StatusOr<std::optional<VolumeRecord>> RecordFromMountTable(const std::string& volume_id,
                                                                   const std::string& path) const;
  // Without a record or mount: a mapping of the image the volume id names that no other
  // volume's record owns.
  absl::StatusOr<std::optional<VolumeRecord>> RecordFromMappers(const std::string& volume_id) const;

 private:
  // mapper.List(), except that a mapper unusable on this node (FAILED_PRECONDITION, e.g. no rbd
  // CLI) lists nothing instead of failing the search for a volume's device.
  absl::StatusOr<std::vector<MappedDevice>> ListUsable(Mapper& mapper) const;

  const NodeConfig& config_;
  const NodeDeps& deps_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_VOLUME_FINDER_H_
