#include "driver/volume_finder.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "driver/node_log.h"

namespace rbdcsi {

bool SameDevice(const MountInfo& m, const MappedDevice& d) {
  return m.major == d.major && m.minor == d.minor;
}

absl::StatusOr<Mapper*> VolumeFinder::MapperFor(const std::string& name) const {
  return deps_.mappers->Find(name);
}

absl::StatusOr<ImageId> VolumeFinder::ImageOfRequest(
    const std::string& volume_id, const google::protobuf::Map<std::string, std::string>& ctx,
    const MapperTraits& traits) const {
  auto get = [&ctx](const char* key) {
    auto it = ctx.find(key);
    return it == ctx.end() ? std::string() : it->second;
  };
  ImageId id;
  if (get("image").empty()) {
    ASSIGN_OR_RETURN(id, ImageOfVolumeId(volume_id, traits));
    // The context must match the volume (CSI); a pool or namespace the id contradicts is the
    // caller's mistake, never silently ignored.
    if (ctx.count("pool") != 0 && get("pool") != id.pool) {
      return absl::InvalidArgumentError(
          absl::StrCat("volume_context.pool '", get("pool"), "' does not match the volume id"));
    }
    if (ctx.count("radosNamespace") != 0 && get("radosNamespace") != id.rados_namespace) {
      return absl::InvalidArgumentError(absl::StrCat("volume_context.radosNamespace '",
                                                     get("radosNamespace"),
                                                     "' does not match the volume id"));
    }
  } else {
    id.pool = get("pool").empty() ? config_.default_pool : get("pool");
    id.rados_namespace = get("radosNamespace");
    id.image = get("image");
    RETURN_IF_ERROR(Annotate(ValidateImageName(id.pool, "pool"), "volume_context"));
    if (!id.rados_namespace.empty()) {
      RETURN_IF_ERROR(
          Annotate(ValidateImageName(id.rados_namespace, "radosNamespace"), "volume_context"));
    }
    RETURN_IF_ERROR(Annotate(ValidateImageName(id.image, "image"), "volume_context"));
  }
  if (!get("clusterID").empty()) {
    if (!traits.ceph_images) {
      return absl::InvalidArgumentError(
          "volume_context.clusterID names a Ceph cluster, which the chosen mapper cannot map");
    }
    RETURN_IF_ERROR(Annotate(ValidateImageName(get("clusterID"), "clusterID"), "volume_context"));
    id.cluster_id = get("clusterID");
  }
  if (traits.ceph_images && id.cluster_id.empty() && !get("monitors").empty()) {
    id.cluster_id = ClusterIdFromMonitors(get("monitors"));
  }
  return id;
}

absl::StatusOr<ImageId> VolumeFinder::ImageOfVolumeId(const std::string& volume_id,
                                                      const MapperTraits& traits) const {
  absl::StatusOr<ImageId> id = DecodeVolumeId(volume_id);
  if (absl::IsNotFound(id.status()) && ValidateImageName(volume_id, "image").ok()) {
    // A bare image name: the default pool (kept from before the volume-id codec).
    return ImageId{"", config_.default_pool, "", volume_id};
  }
  if (id.ok() && !traits.ceph_images && !id->cluster_id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("volume ", volume_id,
                                                   " names an image of cluster ", id->cluster_id,
                                                   ", which the chosen mapper cannot map"));
  }
  return id;
}

ImageId VolumeFinder::ImageOfRecord(const VolumeRecord& record) const {
  ImageId id = record.image_id();
  if (id.cluster_id.empty() && !record.monitors.empty()) {
    absl::StatusOr<Mapper*> mapper = MapperFor(record.mapper);
    if (mapper.ok() && (*mapper)->Traits().ceph_images) {
      id.cluster_id = ClusterIdFromMonitors(record.monitors);
    }
  }
  return id;
}

absl::Status VolumeFinder::CheckNoOtherOwner(const VolumeRecord& record) const {
  const std::string key = ImageOfRecord(record).Key();
  ASSIGN_OR_RETURN(std::vector<VolumeRecord> all, deps_.records->List());
  for (const VolumeRecord& r : all) {
    if (r.volume_id == record.volume_id || ImageOfRecord(r).Key() != key) continue;
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", record.volume_id, ": image ", ImageOfRecord(record).ToString(),
                     r.step == StageStep::kStaged
                         ? " is already staged on this node for volume "
                         : " has an unfinished stage or unstage on this node for volume ",
                     r.volume_id, "; unstage that volume first"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<MappedDevice>> VolumeFinder::FindMapping(
    Mapper& mapper, const VolumeRecord& record) const {
  // Prefer the device the record names; after a reboot it may have another number.
  return mapper.Find(record.image, record.has_device() ? record.device.path : "");
}

absl::Status VolumeFinder::CheckStillStaged(const VolumeRecord& record) const {
  if (record.block) return CheckStillStaged(record, {});
  ASSIGN_OR_RETURN(std::vector<MountInfo> table, deps_.mounter->List());
  return CheckStillStaged(record, table);
}

absl::Status VolumeFinder::CheckStillStaged(const VolumeRecord& record,
                                            const std::vector<MountInfo>& table) const {
  ASSIGN_OR_RETURN(Mapper * mapper, MapperFor(record.mapper));
  ASSIGN_OR_RETURN(std::optional<MappedDevice> mapped, FindMapping(*mapper, record));
  if (!mapped || mapped->major != record.device.major || mapped->minor != record.device.minor) {
    const std::string why = mapper->WhyGone(record.device);
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", record.volume_id, ": image ", record.image.ToString(),
                     " is no longer mapped at ", record.device.path, " (", record.device.major, ":",
                     record.device.minor, ")", why.empty() ? "" : ": ", why));
  }
  if (record.block) return absl::OkStatus();
  for (const MountInfo& m : MountsAt(table, record.staging_path)) {
    if (SameDevice(m, record.device)) return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat("volume ", record.volume_id, ": staging path ",
                                                    record.staging_path, " is not mounted from ",
                                                    record.device.path));
}

absl::StatusOr<std::optional<std::string>> VolumeFinder::OtherOwner(
    const VolumeRecord& record, const MappedDevice& device) const {
  ASSIGN_OR_RETURN(std::vector<VolumeRecord> all, deps_.records->List());
  for (const VolumeRecord& r : all) {
    if (r.volume_id != record.volume_id && r.has_device() && r.device.major == device.major &&
        r.device.minor == device.minor) {
      return std::optional<std::string>(r.volume_id);
    }
  }
  return std::optional<std::string>();
}

absl::StatusOr<std::optional<VolumeRecord>> VolumeFinder::RecordFromMountTable(
    const std::string& volume_id, const std::string& path) const {
  ASSIGN_OR_RETURN(std::vector<MountInfo> table, deps_.mounter->List());
  std::vector<MountInfo> at = MountsAt(table, path);
  if (at.empty()) return std::nullopt;
  // Which of our mappers owns the mounted device?
  for (Mapper* mapper : deps_.mappers->All()) {
    ASSIGN_OR_RETURN(std::vector<MappedDevice> mapped, ListUsable(*mapper));
    for (const MappedDevice& d : mapped) {
      if (!SameDevice(at.front(), d)) continue;
      VolumeRecord r;
      r.volume_id = volume_id;
      r.mapper = std::string(mapper->Name());
      r.image = d.image;
      r.device = d;
      r.staging_path = path;
      r.step = StageStep::kStaged;
      return r;
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("volume ", volume_id, ": ", path, " has a mount of device ", at.front().major,
                   ":", at.front().minor, " (", at.front().source,
                   ") that none of this plugin's mappers knows; not touching it"));
}

absl::StatusOr<std::vector<MappedDevice>> VolumeFinder::ListUsable(Mapper& mapper) const {
  absl::StatusOr<std::vector<MappedDevice>> mapped = mapper.List();
  if (absl::IsFailedPrecondition(mapped.status())) {
    // The mapper cannot work on this node (e.g. no rbd CLI): it has mapped nothing here.
    NodeLog()->debug("mapper {} skipped while looking for a volume's device: {}", mapper.Name(),
                     mapped.status().message());
    return std::vector<MappedDevice>();
  }
  return mapped;
}

absl::StatusOr<std::optional<VolumeRecord>> VolumeFinder::RecordFromMappers(
    const std::string& volume_id) const {
  for (Mapper* mapper : deps_.mappers->All()) {
    absl::StatusOr<ImageId> id = ImageOfVolumeId(volume_id, mapper->Traits());
    if (!id.ok()) continue;  // an id this mapper's images cannot have
    const ImageSpec image = id->Spec();
    VolumeRecord r;
    r.volume_id = volume_id;
    r.mapper = std::string(mapper->Name());
    r.cluster_id = id->cluster_id;
    r.image = image;
    r.step = StageStep::kUnmounted;
    ASSIGN_OR_RETURN(std::vector<MappedDevice> all, ListUsable(*mapper));
    std::optional<MappedDevice> mapped;
    for (const MappedDevice& d : all) {
      if (d.image == image) mapped = d;
    }
    if (!mapped) continue;
    ASSIGN_OR_RETURN(std::optional<std::string> owner, OtherOwner(r, *mapped));
    if (owner) continue;  // staged for another volume id: not ours to unmap
    r.device = *mapped;
    return std::optional<VolumeRecord>(r);
  }
  return std::optional<VolumeRecord>();
}

}  // namespace rbdcsi
