// Publishing a staged volume to a pod's target path and back, its stats and its expansion.
#ifndef RBDCSI_DRIVER_PUBLISHER_H_
#define RBDCSI_DRIVER_PUBLISHER_H_

#include <vector>

#include "absl/status/status.h"
#include "csi.pb.h"
#include "driver/node_deps.h"
#include "driver/validation.h"
#include "driver/volume_finder.h"

namespace rbdcsi {

// Thread-safe; operations on one volume are serialized by the per-volume try-lock (ABORTED).
class Publisher {
 public:
  Publisher(const NodeConfig& config, const NodeDeps& deps, const VolumeFinder& finder)
      : config_(config), deps_(deps), finder_(finder) {}

  // Bind-mounts the staged filesystem (or the device, for block volumes) at the target path.
  // NOT_FOUND when the volume is not staged here; FAILED_PRECONDITION when its staging mount
  // or mapping is gone; ALREADY_EXISTS when the target holds something else.
  absl::Status Publish(const csi::v1::NodePublishVolumeRequest& req);

  // Undoes a publish this plugin recorded for this volume at the target path: unmounts its
  // binds (refusing any mount on top that is not this volume's) and removes the directory or
  // file publish created when it is still empty. A target that was not published here is left
  // untouched: OK when nothing is mounted there (already unpublished), FAILED_PRECONDITION when
  // something is; the volume's staging path as target is INVALID_ARGUMENT.
  absl::Status Unpublish(const csi::v1::NodeUnpublishVolumeRequest& req);

  // Usage of the volume path, and the volume condition (abnormal when the staging mount or the
  // mapping is gone). NOT_FOUND when the volume is not staged, the path does not exist or is
  // neither its staging path nor one of its publishes (a mount of its device, or its device).
  absl::Status GetVolumeStats(const csi::v1::NodeGetVolumeStatsRequest& req,
                              csi::v1::NodeGetVolumeStatsResponse* resp);

  // Makes the device and the filesystem follow a grown image. OUT_OF_RANGE when the device is
  // still smaller than asked.
  absl::Status Expand(const csi::v1::NodeExpandVolumeRequest& req,
                      csi::v1::NodeExpandVolumeResponse* resp);

 private:
  // OK when `path` (which exists: `info`) is the volume's staging path, its device node or a
  // mount of its device; NOT_FOUND otherwise.
  absl::Status CheckVolumePath(const VolumeRecord& record, const std::string& path,
                               const FileInfo& info);
  // Creates the target's last component (a directory, or a file for block volumes) and binds.
  // FAILED_PRECONDITION unless the volume is still staged (in `table`, the mount table) and
  // for the access type (block or mount) `cap` asks for.
  absl::Status CheckPublishable(const VolumeRecord& record, const Capability& cap,
                                const std::vector<MountInfo>& table) const;
  absl::Status BindAt(const VolumeRecord& record, const std::string& target, bool read_only);

  const NodeConfig& config_;
  const NodeDeps& deps_;
  const VolumeFinder& finder_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_PUBLISHER_H_
