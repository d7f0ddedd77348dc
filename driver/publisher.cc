// Publish, unpublish, stats and expansion of a staged volume.
#include "driver/publisher.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status.h"
#include "driver/mount_stack.h"
#include "driver/node_log.h"
#include "driver/validation.h"

namespace rbdcsi {
namespace {

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

// `top`, the topmost mount at `target`, is a bind of this volume: its filesystem (mount
// volumes) or its device node (block volumes), and not the staging mount itself.
bool IsOurBind(HostEnv& env, const VolumeRecord& record, const std::string& target,
               const MountInfo& top) {
  if (record.block) return IsDeviceNodeOf(env, target, record.device);
  return top.major == record.device.major && top.minor == record.device.minor &&
         top.mount_point != record.staging_path;
}

// Records written before publishes were tracked cannot say; any bind of the volume counts.
bool IsRecordedPublish(const VolumeRecord& record, const std::string& target) {
  return !record.publishes_known || std::find(record.published.begin(), record.published.end(),
                                              target) != record.published.end();
}

// Removes what publish created at `target` once nothing is mounted there: an empty directory
// (mount volumes) or an empty regular file (block volumes). Anything else stays.
void RemoveCreatedTarget(HostEnv& env, const VolumeRecord& record, const std::string& target) {
  absl::StatusOr<FileInfo> info = env.Stat(target);
  if (!info.ok()) return;
  const bool ours = record.block ? info->type == FileType::kRegular && info->size == 0
                                 : info->type == FileType::kDirectory;
  if (!ours) {
    NodeLog()->warn("volume {}: {} is not what publish created; left in place", record.volume_id,
                    target);
    return;
  }
  // rmdir(2) keeps a directory that is not empty.
  if (absl::Status st = env.Remove(target); !st.ok()) {
    NodeLog()->warn("volume {}: {} left in place: {}", record.volume_id, target, st.message());
  }
}

absl::Status ForgetPublish(RecordStore& records, VolumeRecord& record, const std::string& target) {
  auto it = std::find(record.published.begin(), record.published.end(), target);
  if (it == record.published.end()) return absl::OkStatus();
  record.published.erase(it);
  return records.Save(record);
}

// The request's own checks, before any path is resolved: the capability it asks for.
absl::StatusOr<Capability> ValidatePublishRequest(const csi::v1::NodePublishVolumeRequest& req) {
  RETURN_IF_ERROR(ValidateVolumeId(req.volume_id()));
  RETURN_IF_ERROR(ValidatePath(req.staging_target_path(), "staging_target_path"));
  RETURN_IF_ERROR(ValidatePath(req.target_path(), "target_path"));
  if (!req.has_volume_capability()) {
    return absl::InvalidArgumentError("volume_capability is required");
  }
  return ParseCapability(req.volume_capability());
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

absl::Status Publisher::CheckPublishable(const VolumeRecord& record, const Capability& cap,
                                         const std::vector<MountInfo>& table) const {
  // Never hand a pod a device or directory that is no longer this volume's.
  if (absl::Status live = finder_.CheckStillStaged(record, table); !live.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(live.message(), "; NodeStageVolume must stage it again first"));
  }
  if (record.block != cap.block) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", record.volume_id, " was staged for ", record.block ? "block" : "mount",
        " access and cannot be published for ", cap.block ? "block" : "mount", " access"));
  }
  return absl::OkStatus();
}

absl::Status Publisher::Publish(const csi::v1::NodePublishVolumeRequest& req) {
  ASSIGN_OR_RETURN(const Capability cap, ValidatePublishRequest(req));
  ASSIGN_OR_RETURN(const std::string staging,
                   ResolveRequestPath(config_.paths, req.staging_target_path(),
                                      "staging_target_path", PathNeed::kNone));
  ASSIGN_OR_RETURN(const std::string target, ResolveRequestPath(config_.paths, req.target_path(),
                                                                "target_path", PathNeed::kParent));
  RETURN_IF_ERROR(deps_.locks->TryLock(req.volume_id()));
  VolumeLockGuard guard(deps_.locks, req.volume_id());
  ASSIGN_OR_RETURN(VolumeRecord record, StagedRecord(*deps_.records, req.volume_id()));
  if (record.staging_path != staging) {
    return absl::FailedPreconditionError(absl::StrCat("volume ", req.volume_id(), " is staged at ",
                                                      record.staging_path, ", not ",
                                                      req.staging_target_path()));
  }
  // One read of the mount table serves both this check and the target's below.
  ASSIGN_OR_RETURN(std::vector<MountInfo> table, deps_.mounter->List());
  RETURN_IF_ERROR(CheckPublishable(record, cap, table));
  const bool read_only = req.readonly() || cap.read_only_mode || record.read_only;
  if (IsUnder(target, record.staging_path) || IsUnder(record.staging_path, target)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target_path ", target, " overlaps the staging path of volume ", req.volume_id()));
  }
  const bool recorded = IsRecordedPublish(record, target);

  std::vector<MountInfo> at = MountsAt(table, target);
  if (!at.empty()) {
    const MountInfo& top = at.back();
    const bool same = IsOurBind(*deps_.env, record, target, top);
    const bool top_ro = top.mount_options.rfind("ro", 0) == 0;
    if (same && recorded && top_ro == read_only) return absl::OkStatus();
    return absl::AlreadyExistsError(absl::StrCat("target path ", target, " is already mounted ",
                                                 !same    ? "from another device"
                                                 : top_ro ? "read-only"
                                                          : "read-write",
                                                 "; unpublish it first"));
  }
  if (!recorded) {
    // Written ahead of the bind: a crash after it leaves a publish that unpublish undoes.
    record.published.push_back(target);
    RETURN_IF_ERROR(deps_.records->Save(record));
  }
  absl::Status st = BindAt(record, target, read_only);
  if (!st.ok()) {
    RemoveCreatedTarget(*deps_.env, record, target);
    ForgetPublish(*deps_.records, record, target).IgnoreError();
  }
  return st;
}

absl::Status Publisher::BindAt(const VolumeRecord& record, const std::string& target,
                               bool read_only) {
  // Only the last component is created: its parent is the CO's to make, and a missing one is
  // the caller's mistake (INVALID_ARGUMENT, never NOT_FOUND: "no such volume" to a CO).
  absl::Status made =
      record.block ? deps_.env->CreateFile(target, 0640) : deps_.env->MakeDir(target, 0750);
  if (absl::IsNotFound(made)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target_path ", target, ": its parent is not a directory that exists; ", made.message()));
  }
  if (!made.ok() && !absl::IsAlreadyExists(made)) return made;
  RETURN_IF_ERROR(VerifyResolved(config_.paths, target, "target_path"));
  return deps_.mounter->BindMount(record.block ? record.device.path : record.staging_path, target,
                                  read_only);
}

absl::Status Publisher::Unpublish(const csi::v1::NodeUnpublishVolumeRequest& req) {
  RETURN_IF_ERROR(ValidateVolumeId(req.volume_id()));
  RETURN_IF_ERROR(ValidatePath(req.target_path(), "target_path"));
  RETURN_IF_ERROR(deps_.locks->TryLock(req.volume_id()));
  VolumeLockGuard guard(deps_.locks, req.volume_id());
  ASSIGN_OR_RETURN(const std::string target, ResolveRequestPath(config_.paths, req.target_path(),
                                                                "target_path", PathNeed::kNone));
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> record, deps_.records->Load(req.volume_id()));
  if (record && target == record->staging_path) {
    return absl::InvalidArgumentError(
        absl::StrCat("target_path ", target, " is the staging path of volume ", req.volume_id(),
                     ", not a publish target; left untouched"));
  }
  ASSIGN_OR_RETURN(std::vector<MountInfo> table, deps_.mounter->List());
  const bool mounted = !MountsAt(table, target).empty();
  if (!record || !IsRecordedPublish(*record, target)) {
    // Not published here by this plugin: nothing of ours to undo (CSI: OK), and whatever is
    // there is not ours to touch.
    if (!mounted) {
      NodeLog()->info("volume {}: {} is not published here; left untouched", req.volume_id(),
                      target);
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", req.volume_id(), ": ", target,
                     " has a mount that rbdcsi did not publish for this volume; left untouched"));
  }
  UnmountStackHooks hooks;
  hooks.check_top = [this, &record, &target, &req](const MountInfo& top) {
    if (IsOurBind(*deps_.env, *record, target, top)) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", req.volume_id(), ": ", target, " has a mount of ", top.source, " (", top.major,
        ":", top.minor, ") on top that is not this volume's; left untouched"));
  };
  RETURN_IF_ERROR(UnmountStack(*deps_.mounter, target, req.volume_id(), hooks, &table));
  if (record->publishes_known) RemoveCreatedTarget(*deps_.env, *record, target);
  return ForgetPublish(*deps_.records, *record, target);
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
  NodeLog()->info("volume {}: expanded to {} bytes", req.volume_id(), size);
  resp->set_capacity_bytes(static_cast<int64_t>(size));
  return absl::OkStatus();
}

}  // namespace rbdcsi
