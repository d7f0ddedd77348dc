// NodeStageVolume and NodeUnstageVolume (DESIGN.md): the record is written before each step
// that creates something and updated after it, so a later call can always finish the job.
#include "driver/volume_stager.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/fault_point.h"
#include "base/file_util.h"
#include "base/status.h"
#include "driver/mount_stack.h"
#include "driver/node_log.h"
#include "driver/stage_request.h"
#include "driver/validation.h"

namespace rbdcsi {
namespace {

// The record's mount flags are the mount-flag policy's result (mounter/mount_flags.h), which is
// the one place that adds "ro" for a read-only access mode.
std::string MountOptions(const VolumeRecord& r) { return absl::StrJoin(r.mount_flags, ","); }

// The same request again must succeed; a different one for a staged volume must not.
absl::Status CheckCompatible(const VolumeRecord& have, const VolumeRecord& want) {
  std::vector<std::string> diffs;
  if (have.staging_path != want.staging_path) {
    diffs.push_back(absl::StrCat("staging path ", have.staging_path));
  }
  if (have.block != want.block) diffs.push_back(have.block ? "block access" : "mount access");
  if (!have.block && have.fs_type != want.fs_type) {
    diffs.push_back(absl::StrCat("filesystem ", have.fs_type));
  }
  if (have.read_only != want.read_only)
    diffs.push_back(have.read_only ? "read-only" : "read-write");
  if (have.mapper != want.mapper || !(have.image == want.image)) {
    diffs.push_back(absl::StrCat("image ", have.mapper, ":", have.image.ToString()));
  }
  if (have.mount_flags != want.mount_flags) {
    diffs.push_back(absl::StrCat("mount flags [", absl::StrJoin(have.mount_flags, ","), "]"));
  }
  if (diffs.empty()) return absl::OkStatus();
  return absl::AlreadyExistsError(absl::StrCat(
      "volume ", want.volume_id, " is already staged with ", absl::StrJoin(diffs, ", ")));
}

// Unmaps retried beyond this are a loop, not a busy device.
constexpr int kMaxUnmaps = 64;

}  // namespace

absl::StatusOr<VolumeRecord> VolumeStager::RecordFromRequest(
    const csi::v1::NodeStageVolumeRequest& req, MapOptions* map_options) const {
  ASSIGN_OR_RETURN(Capability cap, ParseCapability(req.volume_capability()));
  const auto& ctx = req.volume_context();
  VolumeRecord r;
  r.volume_id = req.volume_id();
  r.mapper =
      RequestValue(ctx, "mapper").empty() ? config_.default_mapper : RequestValue(ctx, "mapper");
  ASSIGN_OR_RETURN(Mapper * mapper, finder_.MapperFor(r.mapper));
  const MapperTraits traits = mapper->Traits();
  ASSIGN_OR_RETURN(const ImageId image, finder_.ImageOfRequest(req.volume_id(), ctx, traits));
  r.cluster_id = image.cluster_id;
  r.image = image.Spec();
  r.monitors = RequestValue(ctx, "monitors");
  if (r.monitors.empty() && !image.cluster_id.empty() && deps_.clusters != nullptr) {
    ASSIGN_OR_RETURN(const ClusterConfig cluster, deps_.clusters->Find(image.cluster_id));
    r.monitors = cluster.MonitorList();
  }
  r.block = cap.block;
  r.fs_type = cap.fs_type;
  r.mount_flags = cap.mount_flags;
  r.read_only = cap.read_only_mode;
  r.step = StageStep::kMapping;

  map_options->image = r.image;
  map_options->read_only = r.read_only;
  map_options->single_writer =
      !r.read_only && cap.mode != csi::v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER;
  map_options->monitors = r.monitors;
  RETURN_IF_ERROR(ReadCredentials(req, r, *map_options));
  if (!r.monitors.empty() && r.monitors.front() == '-') {
    return absl::InvalidArgumentError("volume_context.monitors starts with '-'");
  }
  RETURN_IF_ERROR(CheckRequired(traits, req, r, *map_options));
  return r;
}

absl::Status VolumeStager::Stage(const csi::v1::NodeStageVolumeRequest& req) {
  RETURN_IF_ERROR(ValidateVolumeId(req.volume_id()));
  RETURN_IF_ERROR(ValidatePath(req.staging_target_path(), "staging_target_path"));
  if (!req.has_volume_capability()) {
    return absl::InvalidArgumentError("volume_capability is required");
  }
  // The CO makes the staging directory's parent (CSI); rbdcsi makes at most the last component.
  ASSIGN_OR_RETURN(const std::string staging,
                   ResolveRequestPath(config_.paths, req.staging_target_path(),
                                      "staging_target_path", PathNeed::kParent));
  MapOptions map_options;
  ASSIGN_OR_RETURN(VolumeRecord want, RecordFromRequest(req, &map_options));
  want.staging_path = staging;
  RETURN_IF_ERROR(deps_.locks->TryLock(req.volume_id()));
  VolumeLockGuard guard(deps_.locks, req.volume_id());
  // One image, many names (issue: two volume ids, two rw mounts): serialize by the image and
  // decide ownership only while holding its lock.
  const ImageId image = finder_.ImageOfRecord(want);
  RETURN_IF_ERROR(deps_.locks->TryLockImage(image, req.volume_id()));
  ImageLockGuard image_guard(deps_.locks, image);
  RETURN_IF_ERROR(finder_.CheckNoOtherOwner(want));

  ASSIGN_OR_RETURN(std::optional<VolumeRecord> have, deps_.records->Load(req.volume_id()));
  std::optional<ImageLockGuard> old_image_guard;
  if (have && finder_.ImageOfRecord(*have).Key() != image.Key()) {
    // An unfinished operation of this volume id on another image: that image is undone below.
    RETURN_IF_ERROR(deps_.locks->TryLockImage(finder_.ImageOfRecord(*have), req.volume_id()));
    old_image_guard.emplace(deps_.locks, finder_.ImageOfRecord(*have));
  }
  BusyBudget budget;
  if (have && have->step == StageStep::kStaged) {
    RETURN_IF_ERROR(CheckCompatible(*have, want));
    absl::Status live = finder_.CheckStillStaged(*have);
    if (live.ok()) return absl::OkStatus();
    // E.g. after a reboot: the record survived, the mapping and mount did not.
    NodeLog()->warn("{}; staging again", live.message());
  }
  if (have) {
    // An earlier attempt stopped halfway (crash, or an unstage that could not unmap): finish
    // undoing it, then start clean.
    NodeLog()->info("volume {}: undoing an unfinished earlier operation (step {})", have->volume_id,
                    StageStepName(have->step));
    RETURN_IF_ERROR(UndoStaging(*have, budget));
  }
  return StageNew(want, map_options, budget);
}

absl::StatusOr<std::optional<MappedDevice>> VolumeStager::ReusableMapping(
    const VolumeRecord& record) const {
  ASSIGN_OR_RETURN(Mapper * mapper, finder_.MapperFor(record.mapper));
  ASSIGN_OR_RETURN(std::optional<MappedDevice> existing, finder_.FindMapping(*mapper, record));
  if (!existing) return existing;
  // A mapping left by an earlier attempt of this volume is reused; another volume's is not.
  ASSIGN_OR_RETURN(std::optional<std::string> owner, finder_.OtherOwner(record, *existing));
  if (owner) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", record.volume_id, ": image ", record.image.ToString(), " is already mapped at ",
        existing->path, " for volume ", *owner, " on this node"));
  }
  NodeLog()->info("volume {}: reusing existing mapping {} of {}", record.volume_id, existing->path,
                  record.image.ToString());
  return existing;
}

absl::Status VolumeStager::StageNew(VolumeRecord& record, const MapOptions& map_options,
                                    BusyBudget& budget) {
  ASSIGN_OR_RETURN(std::optional<MappedDevice> existing, ReusableMapping(record));
  RETURN_IF_ERROR(deps_.records->Save(record));
  FaultPoint("stage:record-mapping");
  ASSIGN_OR_RETURN(Mapper * mapper, finder_.MapperFor(record.mapper));
  absl::StatusOr<MappedDevice> device = existing ? *existing : mapper->Map(map_options);
  FaultPoint("stage:mapped");
  if (!device.ok()) {
    const absl::Status st =
        Annotate(device.status(), absl::StrCat("volume ", record.volume_id, ": mapping ",
                                               record.mapper, ":", record.image.ToString()));
    if (absl::IsDeadlineExceeded(st)) {
      // The kernel may still finish the mapping: the record (step "mapping") stays, so that the
      // next NodeStage or NodeUnstage finds and undoes whatever appears.
      return Annotate(st, "the volume record is kept so that a retry cleans up");
    }
    // Anything else may also have left a mapping behind (rbd failing after the kernel mapped):
    // undo whatever exists; the record goes only when nothing is left.
    absl::Status undo = UndoStaging(record, budget);
    if (!undo.ok()) return Annotate(st, absl::StrCat("and cleaning up failed: ", undo.message()));
    return st;
  }
  record.device = *device;
  record.step = StageStep::kMapped;
  absl::Status st = deps_.records->Save(record);
  if (st.ok() && !record.block) st = MountStaged(record);
  if (st.ok() && !record.block) RememberStagingMount(record);
  if (st.ok()) FaultPoint("stage:mounted");
  if (st.ok()) {
    record.step = StageStep::kStaged;
    st = deps_.records->Save(record);
  }
  if (st.ok()) {
    NodeLog()->info("volume {}: staged {} ({}:{}) at {}", record.volume_id, record.device.path,
                    record.device.major, record.device.minor, record.staging_path);
    return absl::OkStatus();
  }
  absl::Status undo = UndoStaging(record, budget);
  if (!undo.ok()) {
    return Annotate(st, absl::StrCat("and undoing the partial stage also failed (", undo.message(),
                                     "); NodeUnstageVolume will finish it"));
  }
  return st;
}

void VolumeStager::RememberStagingMount(VolumeRecord& record) const {
  // How the staging mount propagates, for classifying holders at unstage. Without it every
  // copy counts as private, which fails safe; so a failed read is no failure.
  absl::StatusOr<std::vector<MountInfo>> table = deps_.mounter->List();
  for (const MountInfo& m :
       table.ok() ? MountsAt(*table, record.staging_path) : std::vector<MountInfo>{}) {
    if (!SameDevice(m, record.device)) continue;
    record.staging_peer_group = m.shared_peer_group().value_or(0);
    record.staging_mount_id = m.mount_id;
  }
}

absl::Status VolumeStager::MountStaged(const VolumeRecord& record) {
  const std::string& dev = record.device.path;
  ASSIGN_OR_RETURN(std::string found, deps_.filesystems->Probe(dev));
  std::string fs = record.fs_type;
  if (found.empty()) {
    if (record.read_only) {
      return absl::FailedPreconditionError(
          absl::StrCat("volume ", record.volume_id, ": ", dev,
                       " has no filesystem and read-only access was asked, so none can be made"));
    }
    NodeLog()->info("volume {}: {} is blank, creating {}", record.volume_id, dev, fs);
    RETURN_IF_ERROR(deps_.filesystems->Format(dev, fs));
    FaultPoint("stage:formatted");
  } else if (found != fs) {
    return absl::FailedPreconditionError(absl::StrCat("volume ", record.volume_id, ": ", dev,
                                                      " holds ", found, ", not the requested ", fs,
                                                      "; refusing to format over existing data"));
  }
  if (absl::IsNotFound(deps_.env->Stat(record.staging_path).status())) {
    absl::Status made = deps_.env->MakeDir(record.staging_path, 0750);
    if (absl::IsNotFound(made)) {  // the parent went away since the request was checked
      return absl::InvalidArgumentError(
          absl::StrCat("creating the staging path: ", made.message()));
    }
    if (!made.ok() && !absl::IsAlreadyExists(made)) {
      return Annotate(made, "creating the staging path");
    }
  }
  RETURN_IF_ERROR(VerifyResolved(config_.paths, record.staging_path, "staging_target_path"));
  return deps_.mounter->Mount(dev, record.staging_path, fs, MountOptions(record));
}

absl::Status VolumeStager::UnmountAll(const std::string& path, VolumeRecord& record,
                                      BusyBudget& budget) {
  UnmountStackHooks hooks;
  hooks.check_top = [&record, &path](const MountInfo& top) {
    if (record.has_device() && SameDevice(top, record.device)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", record.volume_id, ": ", path, " has a mount of device ", top.major,
                     ":", top.minor, " (", top.source, ") on top, not this volume's ",
                     record.has_device() ? record.device.path : "(not yet mapped) device",
                     "; refusing to unmount it"));
  };
  hooks.on_busy = [this, &record, &budget](const absl::Status& busy) {
    const int attempt = budget.Next(*deps_.env);
    return deps_.busy->OnBusy(record, BusyStage::kUnmount, busy, attempt, budget.since);
  };
  return UnmountStack(*deps_.mounter, path, record.volume_id, hooks);
}

absl::Status VolumeStager::UnmapDevice(VolumeRecord& record, BusyBudget& budget) {
  ASSIGN_OR_RETURN(Mapper * mapper, finder_.MapperFor(record.mapper));
  // Every mapping of the image by this mapper goes, the recorded device first: a map that
  // finished after a crash (or a timeout) may have left another one nobody recorded.
  for (int round = 0; round < kMaxUnmaps; ++round) {
    ASSIGN_OR_RETURN(std::optional<MappedDevice> mapped, finder_.FindMapping(*mapper, record));
    if (!mapped) return absl::OkStatus();  // none (left): unmapped by us, earlier, or by hand
    ASSIGN_OR_RETURN(std::optional<std::string> owner, finder_.OtherOwner(record, *mapped));
    if (owner) {
      return absl::FailedPreconditionError(
          absl::StrCat("volume ", record.volume_id, ": ", mapped->path, " maps image ",
                       record.image.ToString(), " for volume ", *owner, "; not unmapping it"));
    }
    absl::Status st = mapper->Unmap(*mapped);
    if (st.ok()) {
      NodeLog()->info("volume {}: unmapped {}", record.volume_id, mapped->path);
      continue;
    }
    if (!IsBusy(st)) return Annotate(st, absl::StrCat("volume ", record.volume_id));
    record.device = *mapped;
    const int attempt = budget.Next(*deps_.env);
    RETURN_IF_ERROR(deps_.busy->OnBusy(record, BusyStage::kUnmap, st, attempt, budget.since));
  }
  return absl::FailedPreconditionError(absl::StrCat("volume ", record.volume_id, ": ",
                                                    record.device.path, " is still mapped after ",
                                                    kMaxUnmaps, " attempts; giving up"));
}

absl::Status VolumeStager::UndoStaging(VolumeRecord& record, BusyBudget& budget) {
  // Nothing is mounted before the device is known, so without one there is nothing to unmount.
  if (!record.staging_path.empty() && record.has_device()) {
    RETURN_IF_ERROR(UnmountAll(record.staging_path, record, budget));
  }
  FaultPoint("undo:unmounted");
  if (record.step != StageStep::kUnmounted) {
    record.step = StageStep::kUnmounted;
    RETURN_IF_ERROR(deps_.records->Save(record));
  }
  FaultPoint("undo:record-unmounted");
  RETURN_IF_ERROR(UnmapDevice(record, budget));
  FaultPoint("undo:unmapped");
  return deps_.records->Delete(record.volume_id);
}

absl::Status VolumeStager::Unstage(const csi::v1::NodeUnstageVolumeRequest& req) {
  RETURN_IF_ERROR(ValidateVolumeId(req.volume_id()));
  RETURN_IF_ERROR(ValidatePath(req.staging_target_path(), "staging_target_path"));
  ASSIGN_OR_RETURN(const std::string staging,
                   ResolveRequestPath(config_.paths, req.staging_target_path(),
                                      "staging_target_path", PathNeed::kNone));
  RETURN_IF_ERROR(deps_.locks->TryLock(req.volume_id()));
  VolumeLockGuard guard(deps_.locks, req.volume_id());

  ASSIGN_OR_RETURN(std::optional<VolumeRecord> record, deps_.records->Load(req.volume_id()));
  const bool from_store = record.has_value();
  if (!record) {
    // DESIGN.md step 2: without a record, what to undo comes from the mount table, then from
    // the mappers' own lists (mapped but not mounted, e.g. after a lost state directory).
    ASSIGN_OR_RETURN(record, finder_.RecordFromMountTable(req.volume_id(), staging));
    if (!record) {
      ASSIGN_OR_RETURN(record, finder_.RecordFromMappers(req.volume_id()));
    }
    if (!record) return absl::OkStatus();  // nothing mounted, nothing mapped: done already
  }
  const ImageId image = finder_.ImageOfRecord(*record);
  RETURN_IF_ERROR(deps_.locks->TryLockImage(image, req.volume_id()));
  ImageLockGuard image_guard(deps_.locks, image);
  if (!from_store) {
    // Found without a record: under the image lock, make sure no other volume owns it now.
    RETURN_IF_ERROR(finder_.CheckNoOtherOwner(*record));
    NodeLog()->warn("volume {}: no record; found {} ({}:{}) of image {} and will undo it",
                    req.volume_id(), record->device.path, record->device.major,
                    record->device.minor, record->image.ToString());
    RETURN_IF_ERROR(deps_.records->Save(*record));
  }
  BusyBudget budget;
  // The CO's path wins if it differs from the recorded one; both are unmounted.
  if (record->staging_path != staging && record->has_device()) {
    RETURN_IF_ERROR(UnmountAll(staging, *record, budget));
  }
  return UndoStaging(*record, budget);
}

}  // namespace rbdcsi
