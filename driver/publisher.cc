// Publish, unpublish, stats and expansion of a staged volume.
#include "driver/publisher.h"

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/logging.h"
#include "base/status.h"
#include "driver/mount_stack.h"
#include "driver/validation.h"

namespace rbdcsi {
namespace {

const auto& Log() {
  static const auto logger = Logger("node");
  return logger;
}

absl::StatusOr<VolumeRecord> StagedRecord(RecordStore& records, const std::string& volume_id) {
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> record, records.Load(volume_id));
  if (!record || record->step != StageStep::kStaged) {
    return absl::NotFoundError(absl::StrCat("volume ", volume_id, " is not staged on this node"));
  }
  return *std::move(record);
}

// NOT_FOUND when nothing is at `path`.
absl::StatusOr<FileInfo> StatPath(HostEnv& env, const std::string& path) {
  absl::StatusOr<FileInfo> info = env.Stat(path);
  if (absl::IsNotFound(info.status())) {
    return absl::NotFoundError(absl::StrCat("volume path ", path, " does not exist"));
  }
  return info;
}

bool IsDeviceNodeOf(HostEnv& env, const std::string& path, const MappedDevice& d) {
  absl::StatusOr<FileInfo> info = env.Stat(path);
  return info.ok() && info->type == FileType::kBlockDevice && info->rdev.major == d.major &&
         info->rdev.minor == d.minor;
}

}  // namespace

absl::Status Publisher::CheckVolumePath(const VolumeRecord& record, const std::string& path,
                                        const FileInfo& info) {
  const std::string canonical = CanonicalPath(path);
  if (canonical == record.staging_path) return absl::OkStatus();
  const MappedDevice& d = record.device;
  if (info.type == FileType::kBlockDevice && info.rdev.major == d.major &&
      info.rdev.minor == d.minor) {
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::vector<MountInfo> table, deps_.mounter->List());
  const std::vector<MountInfo> at = MountsAt(table, canonical);
  if (!at.empty() && at.back().major == d.major && at.back().minor == d.minor) {
    return absl::OkStatus();
  }
  return absl::NotFoundError(
      absl::StrCat("volume ", record.volume_id, " is neither staged nor published at ", path));
}

absl::Status Publisher::Publish(const csi::v1::NodePublishVolumeRequest& req) {
  RETURN_IF_ERROR(ValidateVolumeId(req.volume_id()));
  RETURN_IF_ERROR(ValidatePath(req.staging_target_path(), "staging_target_path"));
  RETURN_IF_ERROR(ValidatePath(req.target_path(), "target_path"));
  if (!req.has_volume_capability()) {
    return absl::InvalidArgumentError("volume_capability is required");
  }
  ASSIGN_OR_RETURN(Capability cap, ParseCapability(req.volume_capability()));
  RETURN_IF_ERROR(deps_.locks->TryLock(req.volume_id()));
  VolumeLockGuard guard(deps_.locks, req.volume_id());
  ASSIGN_OR_RETURN(VolumeRecord record, StagedRecord(*deps_.records, req.volume_id()));
  if (record.staging_path != CanonicalPath(req.staging_target_path())) {
    return absl::FailedPreconditionError(absl::StrCat("volume ", req.volume_id(), " is staged at ",
                                                      record.staging_path, ", not ",
                                                      req.staging_target_path()));
  }
  // Never hand a pod a device or directory that is no longer this volume's.
  if (absl::Status live = finder_.CheckStillStaged(record); !live.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(live.message(), "; NodeStageVolume must stage it again first"));
  }
  if (record.block != cap.block) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", req.volume_id(), " was staged for ", record.block ? "block" : "mount",
        " access and cannot be published for ", cap.block ? "block" : "mount", " access"));
  }
  const bool read_only = req.readonly() || cap.read_only_mode || record.read_only;
  const std::string target = CanonicalPath(req.target_path());

  ASSIGN_OR_RETURN(std::vector<MountInfo> table, deps_.mounter->List());
  std::vector<MountInfo> at = MountsAt(table, target);
  if (!at.empty()) {
    const MountInfo& top = at.back();
    const bool same = record.block
                          ? IsDeviceNodeOf(*deps_.env, target, record.device)
                          : top.major == record.device.major && top.minor == record.device.minor;
    const bool top_ro = top.mount_options.rfind("ro", 0) == 0;
    if (same && top_ro == read_only) return absl::OkStatus();
    return absl::AlreadyExistsError(
        absl::StrCat("target path ", target, " is already mounted ",
                     same ? (top_ro ? "read-only" : "read-write") : "from another device",
                     "; unpublish it first"));
  }

  if (record.block) {
    // A missing parent shows as the file's creation failing.
    deps_.env->MakeDirs(Dirname(target), 0750).IgnoreError();
    RETURN_IF_ERROR(deps_.env->CreateFile(target, 0640));
    return deps_.mounter->BindMount(record.device.path, target, read_only);
  }
  RETURN_IF_ERROR(deps_.env->MakeDirs(target, 0750));
  return deps_.mounter->BindMount(record.staging_path, target, read_only);
}

absl::Status Publisher::Unpublish(const csi::v1::NodeUnpublishVolumeRequest& req) {
  RETURN_IF_ERROR(ValidateVolumeId(req.volume_id()));
  RETURN_IF_ERROR(ValidatePath(req.target_path(), "target_path"));
  RETURN_IF_ERROR(deps_.locks->TryLock(req.volume_id()));
  VolumeLockGuard guard(deps_.locks, req.volume_id());
  const std::string target = CanonicalPath(req.target_path());
  RETURN_IF_ERROR(UnmountStack(*deps_.mounter, target, req.volume_id(), {}));
  return deps_.env->Remove(target);
}

absl::Status Publisher::GetVolumeStats(const csi::v1::NodeGetVolumeStatsRequest& req,
                                       csi::v1::NodeGetVolumeStatsResponse* resp) {
  RETURN_IF_ERROR(ValidateVolumeId(req.volume_id()));
  RETURN_IF_ERROR(RequireNonEmpty(req.volume_path(), "volume_path"));
  ASSIGN_OR_RETURN(VolumeRecord record, StagedRecord(*deps_.records, req.volume_id()));
  ASSIGN_OR_RETURN(FileInfo info, StatPath(*deps_.env, req.volume_path()));
  // Never report another file system's usage (say the host's root) as this volume's.
  RETURN_IF_ERROR(CheckVolumePath(record, req.volume_path(), info));

  if (info.type == FileType::kBlockDevice) {
    ASSIGN_OR_RETURN(uint64_t size, deps_.env->BlockDeviceSize(req.volume_path()));
    auto* usage = resp->add_usage();
    usage->set_unit(csi::v1::VolumeUsage::BYTES);
    usage->set_total(static_cast<int64_t>(size));
  } else {
    ASSIGN_OR_RETURN(FsUsage fs, deps_.env->StatFs(req.volume_path()));
    auto* bytes = resp->add_usage();
    bytes->set_unit(csi::v1::VolumeUsage::BYTES);
    bytes->set_total(static_cast<int64_t>(fs.total_bytes));
    bytes->set_available(static_cast<int64_t>(fs.available_bytes));
    bytes->set_used(static_cast<int64_t>(fs.total_bytes - fs.free_bytes));
    auto* inodes = resp->add_usage();
    inodes->set_unit(csi::v1::VolumeUsage::INODES);
    inodes->set_total(static_cast<int64_t>(fs.total_inodes));
    inodes->set_available(static_cast<int64_t>(fs.available_inodes));
    inodes->set_used(static_cast<int64_t>(fs.total_inodes - fs.free_inodes));
  }

  // Abnormal when the device or the staging mount has gone from under the volume.
  absl::Status live = finder_.CheckStillStaged(record);
  const std::string problem(live.message());
  resp->mutable_volume_condition()->set_abnormal(!problem.empty());
  resp->mutable_volume_condition()->set_message(problem.empty() ? "volume is healthy" : problem);
  return absl::OkStatus();
}

absl::Status Publisher::Expand(const csi::v1::NodeExpandVolumeRequest& req,
                               csi::v1::NodeExpandVolumeResponse* resp) {
  RETURN_IF_ERROR(ValidateVolumeId(req.volume_id()));
  RETURN_IF_ERROR(RequireNonEmpty(req.volume_path(), "volume_path"));
  RETURN_IF_ERROR(deps_.locks->TryLock(req.volume_id()));
  VolumeLockGuard guard(deps_.locks, req.volume_id());
  ASSIGN_OR_RETURN(VolumeRecord record, StagedRecord(*deps_.records, req.volume_id()));
  ASSIGN_OR_RETURN(FileInfo info, StatPath(*deps_.env, req.volume_path()));
  RETURN_IF_ERROR(CheckVolumePath(record, req.volume_path(), info));
  if (absl::Status live = finder_.CheckStillStaged(record); !live.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(live.message(), "; NodeStageVolume must stage it again first"));
  }
  ASSIGN_OR_RETURN(Mapper * mapper, finder_.MapperFor(record.mapper));
  RETURN_IF_ERROR(mapper->RefreshCapacity(record.device));
  ASSIGN_OR_RETURN(uint64_t size, deps_.env->BlockDeviceSize(record.device.path));
  const int64_t required = req.capacity_range().required_bytes();
  if (required > 0 && size < static_cast<uint64_t>(required)) {
    return absl::OutOfRangeError(absl::StrCat("volume ", req.volume_id(), ": device is ", size,
                                              " bytes, smaller than the requested ", required,
                                              "; expand the image first"));
  }
  if (!record.block && !record.read_only) {
    RETURN_IF_ERROR(
        deps_.filesystems->Grow(record.device.path, record.staging_path, record.fs_type));
  }
  Log()->info("volume {}: expanded to {} bytes", req.volume_id(), size);
  resp->set_capacity_bytes(static_cast<int64_t>(size));
  return absl::OkStatus();
}

}  // namespace rbdcsi
