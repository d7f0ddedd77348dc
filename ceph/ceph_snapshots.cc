// Snapshots, clones and capacity of CephImageStore.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/status.h"
#include "ceph/ceph_image_store.h"

namespace rbdcsi {
namespace {

absl::StatusOr<uint64_t> SnapshotSize(librbd::Image& image, const SnapshotId& id) {
  std::vector<librbd::snap_info_t> snaps;
  if (image.snap_list(snaps) == 0) {
    for (const auto& s : snaps) {
      if (s.name == id.snapshot) return s.size;
    }
  }
  return absl::NotFoundError(absl::StrCat("snapshot ", EncodeSnapshotId(id), " does not exist"));
}

}  // namespace

absl::StatusOr<SnapshotInfo> CephImageStore::CreateSnapshot(const ImageId& source,
                                                            std::string_view name) {
  const SnapshotId wanted{source, std::string(name)};
  RETURN_IF_ERROR(ValidateSnapshotId(wanted));
  ASSIGN_OR_RETURN(PoolHandle p, Pool(source));
  librbd::Image image;
  RETURN_IF_ERROR(Open(p.io, source, /*read_only=*/false, false, &image));
  // Snapshot names are unique in the pool's namespace: the CO's name must not exist on
  // another image (it would be another CSI snapshot).
  librbd::RBD rbd;
  ASSIGN_OR_RETURN(auto images, AllImages(p.io, source));
  for (const auto& [other, trash_id] : images) {
    if (other == source.image && trash_id.empty()) continue;
    librbd::Image candidate;
    const int r = trash_id.empty()
                      ? rbd.open_read_only(p.io, candidate, other.c_str(), nullptr)
                      : rbd.open_by_id_read_only(p.io, candidate, trash_id.c_str(), nullptr);
    bool exists = false;
    if (r == 0 && candidate.snap_exists2(wanted.snapshot.c_str(), &exists) == 0 && exists) {
      return absl::AlreadyExistsError(absl::StrCat("snapshot name ", wanted.snapshot,
                                                   " is taken by a snapshot of image ", other));
    }
  }
  bool exists = false;
  RETURN_IF_ERROR(Check(image.snap_exists2(wanted.snapshot.c_str(), &exists), "snapshot lookup"));
  if (!exists) {
    const int r = image.snap_create(wanted.snapshot.c_str());
    if (r != -EEXIST) RETURN_IF_ERROR(Check(r, "snapshot " + EncodeSnapshotId(wanted)));
    Logger("ceph")->info("created snapshot {}", EncodeSnapshotId(wanted));
  }
  ASSIGN_OR_RETURN(std::vector<SnapshotInfo> snaps, SnapshotsOf(source, image));
  for (SnapshotInfo& s : snaps) {
    if (s.id == wanted) return std::move(s);
  }
  return absl::NotFoundError(absl::StrCat("snapshot ", EncodeSnapshotId(wanted), " vanished"));
}

absl::Status CephImageStore::DeleteSnapshot(const SnapshotId& id) {
  absl::StatusOr<PoolHandle> p = Pool(id.image);
  if (absl::IsNotFound(p.status())) return absl::OkStatus();
  RETURN_IF_ERROR(p.status());
  {
    librbd::Image image;
    absl::Status st = Open(p->io, id.image, /*read_only=*/false, /*include_trash=*/true, &image);
    if (absl::IsNotFound(st)) return absl::OkStatus();
    RETURN_IF_ERROR(st);
    bool exists = false;
    RETURN_IF_ERROR(Check(image.snap_exists2(id.snapshot.c_str(), &exists), "snapshot lookup"));
    if (exists) {
      // Clones (format 2) keep a snapshot with children alive in the trash namespace.
      const int r = image.snap_remove(id.snapshot.c_str());
      if (r != -ENOENT) RETURN_IF_ERROR(Check(r, "remove snapshot " + EncodeSnapshotId(id)));
      Logger("ceph")->info("removed snapshot {}", EncodeSnapshotId(id));
    }
  }
  PurgeTrash(p->io);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SnapshotInfo>> CephImageStore::ListSnapshots(
    const std::optional<ImageId>& source) {
  std::vector<SnapshotInfo> out;
  if (source) {
    absl::StatusOr<PoolHandle> p = Pool(*source);
    if (absl::IsNotFound(p.status())) return out;
    RETURN_IF_ERROR(p.status());
    librbd::Image image;
    absl::Status st = Open(p->io, *source, /*read_only=*/true, /*include_trash=*/true, &image);
    if (absl::IsNotFound(st)) return out;
    RETURN_IF_ERROR(st);
    return SnapshotsOf(*source, image);
  }
  std::string cluster_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cluster_id = cluster_.cluster_id;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<librados::Rados> rados, Session());
  std::list<std::string> pools;
  RETURN_IF_ERROR(Check(rados->pool_list(pools), "list pools"));
  for (const std::string& pool : pools) {
    for (const std::string& ns : Namespaces()) {
      absl::StatusOr<PoolHandle> p = Pool(pool, ns);
      if (!p.ok()) continue;
      ASSIGN_OR_RETURN(auto images, AllImages(p->io, ImageId(cluster_id, pool, ns, "")));
      librbd::RBD rbd;
      for (const auto& [name, trash_id] : images) {
        const ImageId id(cluster_id, pool, ns, name);
        librbd::Image image;
        const int r = trash_id.empty()
                          ? rbd.open_read_only(p->io, image, name.c_str(), nullptr)
                          : rbd.open_by_id_read_only(p->io, image, trash_id.c_str(), nullptr);
        if (r != 0 || !ValidateImageId(id).ok()) continue;
        absl::StatusOr<std::vector<SnapshotInfo>> snaps = SnapshotsOf(id, image);
        if (snaps.ok()) out.insert(out.end(), snaps->begin(), snaps->end());
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const SnapshotInfo& a, const SnapshotInfo& b) {
    return EncodeSnapshotId(a.id) < EncodeSnapshotId(b.id);
  });
  return out;
}

absl::StatusOr<ImageInfo> CephImageStore::Clone(librados::IoCtx& parent_io,
                                                const std::string& parent, const std::string& snap,
                                                uint64_t snap_size, const ImageId& dst,
                                                uint64_t size_bytes, const std::string& source) {
  if (size_bytes != 0 && size_bytes < snap_size) {
    return absl::OutOfRangeError(absl::StrCat("a volume made from ", source, " needs at least ",
                                              snap_size, " bytes, not ", size_bytes));
  }
  RETURN_IF_ERROR(ValidateImageId(dst));
  ASSIGN_OR_RETURN(PoolHandle d, Pool(dst));
  librbd::ImageOptions opts;
  opts.set(RBD_IMAGE_OPTION_FEATURES, uint64_t{RBD_FEATURE_LAYERING});
  opts.set(RBD_IMAGE_OPTION_CLONE_FORMAT, uint64_t{2});
  librbd::RBD rbd;
  int r = rbd.clone3(parent_io, parent.c_str(), snap.c_str(), d.io, dst.image.c_str(), opts);
  if (r == -EEXIST) {
    return absl::AlreadyExistsError(absl::StrCat("image ", dst.ToString(), " already exists"));
  }
  RETURN_IF_ERROR(Check(r, absl::StrCat("clone ", source, " to ", dst.ToString())));
  absl::Status st = [&]() -> absl::Status {
    librbd::Image image;
    RETURN_IF_ERROR(Open(d.io, dst, /*read_only=*/false, false, &image));
    RETURN_IF_ERROR(Check(image.metadata_set(kSourceKey, source), "record the clone's source"));
    if (size_bytes > snap_size) {
      RETURN_IF_ERROR(Check(image.resize(size_bytes), "resize clone " + dst.ToString()));
    }
    return absl::OkStatus();
  }();
  if (!st.ok()) {
    rbd.remove(d.io, dst.image.c_str());  // leave nothing half made behind
    return st;
  }
  Logger("ceph")->info("cloned {} to {}", source, dst.ToString());
  return Info(dst);
}

absl::StatusOr<ImageInfo> CephImageStore::CloneFromSnapshot(const SnapshotId& snapshot,
                                                            const ImageId& dst,
                                                            uint64_t size_bytes) {
  ASSIGN_OR_RETURN(PoolHandle src, Pool(snapshot.image));
  std::string trash_id;
  uint64_t snap_size = 0;
  {
    librbd::Image parent;
    RETURN_IF_ERROR(Open(src.io, snapshot.image, true, /*include_trash=*/true, &parent, &trash_id));
    ASSIGN_OR_RETURN(snap_size, SnapshotSize(parent, snapshot));
  }
  librbd::RBD rbd;
  if (!trash_id.empty()) {
    // librbd clones from a parent by name only: bring the deleted image back for the clone.
    const int r = rbd.trash_restore(src.io, trash_id.c_str(), snapshot.image.image.c_str());
    if (r == -EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("the image of snapshot ", EncodeSnapshotId(snapshot),
                       " was deleted and its name is in use by a new image"));
    }
    RETURN_IF_ERROR(Check(r, "restore the image of " + EncodeSnapshotId(snapshot)));
  }
  absl::StatusOr<ImageInfo> info = Clone(src.io, snapshot.image.image, snapshot.snapshot, snap_size,
                                         dst, size_bytes, EncodeSnapshotId(snapshot));
  if (!trash_id.empty()) {
    const int r = rbd.trash_move(src.io, snapshot.image.image.c_str(), 0);
    if (r != 0) {
      Logger("ceph")->error("could not move deleted image {} back to the trash: {}",
                            snapshot.image.ToString(), std::strerror(-r));
    }
  }
  return info;
}

absl::StatusOr<ImageInfo> CephImageStore::CloneFromImage(const ImageId& src, const ImageId& dst,
                                                         uint64_t size_bytes) {
  ASSIGN_OR_RETURN(PoolHandle s, Pool(src));
  // A clone needs a snapshot; this one only lives on (in the trash namespace) for the clone.
  const std::string snap = "rbdcsi-clone-" + dst.image.substr(0, 96);
  uint64_t snap_size = 0;
  {
    librbd::Image image;
    RETURN_IF_ERROR(Open(s.io, src, /*read_only=*/false, false, &image));
    const int r = image.snap_create(snap.c_str());
    if (r != -EEXIST) RETURN_IF_ERROR(Check(r, "snapshot " + src.ToString() + " for a clone"));
    ASSIGN_OR_RETURN(snap_size, SnapshotSize(image, SnapshotId{src, snap}));
  }
  absl::StatusOr<ImageInfo> info =
      Clone(s.io, src.image, snap, snap_size, dst, size_bytes, EncodeVolumeId(src));
  librbd::Image image;
  if (Open(s.io, src, false, false, &image).ok()) {
    if (const int r = image.snap_remove(snap.c_str()); r != 0) {
      Logger("ceph")->warn("could not remove the clone's snapshot {}@{}: {}", src.ToString(), snap,
                           std::strerror(-r));
    }
  }
  return info;
}

absl::StatusOr<uint64_t> CephImageStore::Capacity(std::string_view pool) {
  ASSIGN_OR_RETURN(std::shared_ptr<librados::Rados> rados, Session());
  // The monitor answers `df` from the statistics the mgr reports: a pool's max_avail is what
  // can still be written to it, replication taken into account (0 until a mgr reported).
  librados::bufferlist in, out;
  std::string status;
  const int r = rados->mon_command(R"({"prefix": "df", "format": "json"})", in, &out, &status);
  RETURN_IF_ERROR(Check(r, "pool statistics"));
  const auto doc = nlohmann::json::parse(out.to_str(), nullptr, false);
  if (doc.is_object() && doc.contains("pools") && doc["pools"].is_array()) {
    for (const auto& p : doc["pools"]) {
      if (p.value("name", "") == pool && p.contains("stats")) {
        return p["stats"].value("max_avail", uint64_t{0});
      }
    }
  }
  if (rados->pool_lookup(std::string(pool).c_str()) < 0) {
    return absl::NotFoundError(absl::StrCat("pool ", AsAbsl(pool), " does not exist"));
  }
  return 0;  // no mgr has reported on the pool yet
}

}  // namespace rbdcsi
