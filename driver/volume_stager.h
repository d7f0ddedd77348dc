// The stage/unstage step machine (DESIGN.md): maps, formats, mounts and undoes, recording each
// step so that a later call can finish what an interrupted one started.
#ifndef RBDCSI_DRIVER_VOLUME_STAGER_H_
#define RBDCSI_DRIVER_VOLUME_STAGER_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "csi.pb.h"
#include "driver/busy_handler.h"
#include "driver/node_deps.h"
#include "driver/volume_finder.h"

namespace rbdcsi {

// Thread-safe: operations on one volume are serialized by the per-volume try-lock and, since
// one image may have several volume ids, by the per-image try-lock (a concurrent second call
// gets ABORTED).
class VolumeStager {
 public:
  VolumeStager(const NodeConfig& config, const NodeDeps& deps, const VolumeFinder& finder)
      : config_(config), deps_(deps), finder_(finder) {}

  // Maps the image, creates a filesystem if the device is blank and writable, mounts it at the
  // staging path. Idempotent; ALREADY_EXISTS when staged with incompatible arguments; NOT_FOUND
  // when the image does not exist; FAILED_PRECONDITION when another volume id has the image
  // staged here. On failure, undoes what this call did.
  absl::Status Stage(const csi::v1::NodeStageVolumeRequest& req);

  // Unmounts the staging path if mounted and unmaps the device, using the volume record even
  // when the staging path is gone. OK when there is nothing left to undo. A busy device goes
  // to the BusyHandler, all busy results of one call sharing one BusyBudget.
  absl::Status Unstage(const csi::v1::NodeUnstageVolumeRequest& req);

 private:
  absl::StatusOr<VolumeRecord> RecordFromRequest(const csi::v1::NodeStageVolumeRequest& req,
                                                 MapOptions* map_options) const;
  absl::Status StageNew(VolumeRecord& record, const MapOptions& map_options, BusyBudget& budget);
  // This volume's leftover mapping of the image, if any. FAILED_PRECONDITION when another
  // volume's record owns the image's mapping.
  absl::StatusOr<std::optional<MappedDevice>> ReusableMapping(const VolumeRecord& record) const;
  // Notes the staging mount's id and peer group in the record.
  void RememberStagingMount(VolumeRecord& record) const;
  absl::Status MountStaged(const VolumeRecord& record);
  absl::Status UndoStaging(VolumeRecord& record, BusyBudget& budget);
  // UnmountStack of `path`, refusing mounts that are not the record's device.
  absl::Status UnmountAll(const std::string& path, VolumeRecord& record, BusyBudget& budget);
  absl::Status UnmapDevice(VolumeRecord& record, BusyBudget& budget);

  const NodeConfig& config_;
  const NodeDeps& deps_;
  const VolumeFinder& finder_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_VOLUME_STAGER_H_
