#include "ceph/ceph_image_store.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/logging.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

// Image metadata rbdcsi keeps: that rbdcsi moved the image to the trash (so that only its own
// trashed images are ever purged or looked up), and kSourceKey.
constexpr char kDeletedKey[] = "rbdcsi.deleted";

absl::StatusOr<uint64_t> FeatureBits(const std::vector<std::string>& names) {
  static const std::map<std::string, uint64_t> kBits = {
      {"layering", RBD_FEATURE_LAYERING},         {"exclusive-lock", RBD_FEATURE_EXCLUSIVE_LOCK},
      {"object-map", RBD_FEATURE_OBJECT_MAP},     {"fast-diff", RBD_FEATURE_FAST_DIFF},
      {"deep-flatten", RBD_FEATURE_DEEP_FLATTEN}, {"journaling", RBD_FEATURE_JOURNALING}};
  uint64_t bits = 0;
  for (const std::string& name : names) {
    const auto it = kBits.find(name);
    if (it == kBits.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("imageFeatures: unknown feature '", name,
                       "' (known: layering, "
                       "exclusive-lock, object-map, fast-diff, deep-flatten, journaling)"));
    }
    bits |= it->second;
  }
  return bits == 0 ? uint64_t{RBD_FEATURE_LAYERING} : bits;
}

std::chrono::system_clock::time_point ToTime(const timespec& ts) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

uint64_t RoundUp(uint64_t size) {
  return (size + kImageSectorSize - 1) / kImageSectorSize * kImageSectorSize;
}

absl::Status CheckSize(uint64_t size) {
  if (size <= kMaxImageSize) return absl::OkStatus();
  return absl::OutOfRangeError(
      absl::StrCat("image size ", size, " bytes is above the largest, ", kMaxImageSize, " bytes"));
}

}  // namespace

absl::Status CephImageStore::Open(librados::IoCtx& io, const ImageId& id, bool read_only,
                                  bool include_trash, librbd::Image* image, std::string* trash_id) {
  librbd::RBD rbd;
  const char* name = id.image.c_str();
  int r = read_only ? rbd.open_read_only(io, *image, name, nullptr) : rbd.open(io, *image, name);
  if (r != -ENOENT) return Check(r, "open image " + id.ToString());
  if (include_trash) {
    ASSIGN_OR_RETURN(auto images, AllImages(io, id));
    for (const auto& [image_name, trashed] : images) {
      if (image_name != id.image || trashed.empty()) continue;
      r = read_only ? rbd.open_by_id_read_only(io, *image, trashed.c_str(), nullptr)
                    : rbd.open_by_id(io, *image, trashed.c_str(), nullptr);
      if (trash_id != nullptr) *trash_id = trashed;
      return Check(r, "open deleted image " + id.ToString());
    }
  }
  return absl::NotFoundError(absl::StrCat("image ", id.ToString(), " does not exist"));
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> CephImageStore::AllImages(
    librados::IoCtx& io, const ImageId& where) {
  librbd::RBD rbd;
  std::vector<librbd::image_spec_t> live;
  int r = rbd.list2(io, &live);
  if (r == -ENOENT) r = 0;  // a namespace or pool without images yet
  RETURN_IF_ERROR(Check(r, "list images of pool " + where.pool));
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& spec : live) out.emplace_back(spec.name, "");
  std::vector<librbd::trash_image_info_t> trashed;
  r = rbd.trash_list(io, trashed);
  if (r == -ENOENT) r = 0;
  RETURN_IF_ERROR(Check(r, "list the trash of pool " + where.pool));
  for (const auto& entry : trashed) {
    librbd::Image image;
    std::string marker;
    if (rbd.open_by_id_read_only(io, image, entry.id.c_str(), nullptr) == 0 &&
        image.metadata_get(kDeletedKey, &marker) == 0) {
      out.emplace_back(entry.name, entry.id);
    }
  }
  return out;
}

void CephImageStore::PurgeTrash(librados::IoCtx& io) {
  ImageId where;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> images = AllImages(io, where);
  if (!images.ok()) return;
  librbd::RBD rbd;
  for (const auto& [name, trash_id] : *images) {
    if (trash_id.empty()) continue;
    {
      librbd::Image image;
      std::vector<librbd::snap_info_t> snaps;
      if (rbd.open_by_id_read_only(io, image, trash_id.c_str(), nullptr) != 0 ||
          image.snap_list(snaps) != 0 || !snaps.empty()) {
        continue;  // something still depends on it
      }
    }
    const int r = rbd.trash_remove(io, trash_id.c_str(), false);
    Logger("ceph")->info("removed deleted image {} (trash id {}) from the trash: {}", name,
                         trash_id, r == 0 ? "done" : std::strerror(-r));
  }
}

absl::StatusOr<ImageInfo> CephImageStore::InfoOf(const ImageId& id, librbd::Image& image) {
  ImageInfo info;
  info.id = id;
  RETURN_IF_ERROR(Check(image.size(&info.size_bytes), "size of image " + id.ToString()));
  timespec ts{};
  if (image.get_create_timestamp(&ts) == 0) info.created = ToTime(ts);
  std::string source;
  if (image.metadata_get(kSourceKey, &source) == 0) {
    if (absl::StatusOr<SnapshotId> snap = DecodeSnapshotId(source); snap.ok()) {
      info.source_snapshot = *snap;
    } else if (absl::StatusOr<ImageId> vol = DecodeVolumeId(source); vol.ok()) {
      info.source_image = *vol;
    }
  }
  return info;
}

absl::StatusOr<std::vector<SnapshotInfo>> CephImageStore::SnapshotsOf(const ImageId& id,
                                                                      librbd::Image& image) {
  std::vector<librbd::snap_info_t> snaps;
  RETURN_IF_ERROR(Check(image.snap_list(snaps), "list snapshots of " + id.ToString()));
  std::vector<SnapshotInfo> out;
  for (const librbd::snap_info_t& s : snaps) {
    librbd::snap_namespace_type_t type{};
    if (image.snap_get_namespace_type(s.id, &type) != 0 || type != RBD_SNAP_NAMESPACE_TYPE_USER) {
      continue;  // a clone's parent snapshot kept in the trash namespace, not a CSI snapshot
    }
    SnapshotInfo info;
    info.id = SnapshotId{id, s.name};
    info.source = id;
    info.size_bytes = s.size;
    timespec ts{};
    if (image.snap_get_timestamp(s.id, &ts) == 0) info.created = ToTime(ts);
    info.ready_to_use = true;
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<ImageInfo> CephImageStore::Create(const ImageId& id, uint64_t size_bytes,
                                                 const CreateOptions& options) {
  RETURN_IF_ERROR(ValidateImageId(id));
  if (size_bytes == 0) return absl::InvalidArgumentError("an image needs a size above 0");
  RETURN_IF_ERROR(CheckSize(size_bytes));
  ASSIGN_OR_RETURN(const uint64_t features, FeatureBits(options.features));
  ASSIGN_OR_RETURN(PoolHandle p, Pool(id));
  librbd::ImageOptions opts;
  opts.set(RBD_IMAGE_OPTION_FORMAT, uint64_t{2});
  opts.set(RBD_IMAGE_OPTION_FEATURES, features);
  if (!options.data_pool.empty()) opts.set(RBD_IMAGE_OPTION_DATA_POOL, options.data_pool);
  const int r = librbd::RBD().create4(p.io, id.image.c_str(), RoundUp(size_bytes), opts);
  if (r == -EEXIST) {
    return absl::AlreadyExistsError(absl::StrCat("image ", id.ToString(), " already exists"));
  }
  RETURN_IF_ERROR(Check(r, "create image " + id.ToString()));
  Logger("ceph")->info("created image {} ({} bytes)", id.ToString(), RoundUp(size_bytes));
  return Info(id);
}

absl::StatusOr<std::vector<std::string>> CephImageStore::Watchers(const ImageId& id) {
  ASSIGN_OR_RETURN(PoolHandle p, Pool(id));
  librbd::Image image;
  RETURN_IF_ERROR(Open(p.io, id, /*read_only=*/true, false, &image));
  std::list<librbd::image_watcher_t> watchers;
  RETURN_IF_ERROR(Check(image.list_watchers(watchers), "list watchers of " + id.ToString()));
  std::vector<std::string> out;
  for (const auto& w : watchers) out.push_back(absl::StrCat(w.addr, " (client.", w.id, ")"));
  return out;
}

absl::Status CephImageStore::Delete(const ImageId& id) {
  absl::StatusOr<PoolHandle> p = Pool(id);
  if (absl::IsNotFound(p.status())) return absl::OkStatus();
  RETURN_IF_ERROR(p.status());
  auto refuse_if_watched = [&]() -> absl::Status {
    absl::StatusOr<std::vector<std::string>> watchers = Watchers(id);
    if (absl::IsNotFound(watchers.status())) return absl::OkStatus();
    RETURN_IF_ERROR(watchers.status());
    if (watchers->empty()) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("image ", id.ToString(), " is in use by watchers ",
                     absl::StrJoin(*watchers, ", "), ": unstage it on its node first"));
  };
  RETURN_IF_ERROR(refuse_if_watched());
  librbd::RBD rbd;
  int r = rbd.remove(p->io, id.image.c_str());
  if (r == -EBUSY || r == -ENOTEMPTY || r == -EMLINK) {
    RETURN_IF_ERROR(refuse_if_watched());
    // Snapshots or clones depend on it: out of the CO's view, into the trash, until they go.
    {
      librbd::Image image;
      RETURN_IF_ERROR(Open(p->io, id, /*read_only=*/false, false, &image));
      RETURN_IF_ERROR(Check(image.metadata_set(kDeletedKey, "1"), "mark " + id.ToString()));
    }
    r = rbd.trash_move(p->io, id.image.c_str(), 0);
    RETURN_IF_ERROR(Check(r, "move image " + id.ToString() + " to the trash"));
    Logger("ceph")->info("moved image {} to the trash: snapshots or clones depend on it",
                         id.ToString());
  } else if (r != -ENOENT) {
    RETURN_IF_ERROR(Check(r, "remove image " + id.ToString()));
    Logger("ceph")->info("removed image {}", id.ToString());
  }
  PurgeTrash(p->io);
  return absl::OkStatus();
}

absl::Status CephImageStore::SetQos(const ImageId& id,
                                    const std::map<std::string, uint64_t>& limits) {
  ASSIGN_OR_RETURN(PoolHandle p, Pool(id));
  librbd::Image image;
  RETURN_IF_ERROR(Open(p.io, id, /*read_only=*/false, false, &image));
  for (const auto& [name, value] : limits) {
    // Image-level overrides of librbd's configuration live in metadata "conf_<option>".
    const std::string key = absl::StrCat("conf_rbd_qos_", name, "_limit");
    const int r =
        value == 0 ? image.metadata_remove(key) : image.metadata_set(key, std::to_string(value));
    if (r != -ENOENT) RETURN_IF_ERROR(Check(r, absl::StrCat("set ", key, " of ", id.ToString())));
  }
  return absl::OkStatus();
}

absl::Status CephImageStore::Resize(const ImageId& id, uint64_t new_size) {
  RETURN_IF_ERROR(CheckSize(new_size));
  ASSIGN_OR_RETURN(PoolHandle p, Pool(id));
  librbd::Image image;
  RETURN_IF_ERROR(Open(p.io, id, /*read_only=*/false, false, &image));
  uint64_t current = 0;
  RETURN_IF_ERROR(Check(image.size(&current), "size of image " + id.ToString()));
  new_size = RoundUp(new_size);
  if (new_size < current) {
    return absl::InvalidArgumentError(absl::StrCat("image ", id.ToString(), " has ", current,
                                                   " bytes and cannot shrink to ", new_size));
  }
  if (new_size == current) return absl::OkStatus();
  return Check(image.resize(new_size), "resize image " + id.ToString());
}

absl::StatusOr<ImageInfo> CephImageStore::Info(const ImageId& id) {
  ASSIGN_OR_RETURN(PoolHandle p, Pool(id));
  librbd::Image image;
  RETURN_IF_ERROR(Open(p.io, id, /*read_only=*/true, false, &image));
  return InfoOf(id, image);
}

std::vector<std::string> CephImageStore::Namespaces() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cluster_.rados_namespace.empty()) return {""};
  return {"", cluster_.rados_namespace};
}

absl::StatusOr<std::vector<ImageInfo>> CephImageStore::List(std::string_view pool) {
  std::string cluster_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cluster_id = cluster_.cluster_id;
  }
  std::list<std::string> pools;
  if (pool.empty()) {
    ASSIGN_OR_RETURN(std::shared_ptr<librados::Rados> rados, Session());
    RETURN_IF_ERROR(Check(rados->pool_list(pools), "list pools"));
  } else {
    pools.emplace_back(pool);
  }
  std::vector<ImageInfo> out;
  for (const std::string& name : pools) {
    for (const std::string& ns : Namespaces()) {
      absl::StatusOr<PoolHandle> p = Pool(name, ns);
      if (absl::IsNotFound(p.status())) continue;
      RETURN_IF_ERROR(p.status());
      ASSIGN_OR_RETURN(auto images, AllImages(p->io, ImageId(cluster_id, name, ns, "")));
      for (const auto& [image_name, trash_id] : images) {
        if (!trash_id.empty()) continue;  // deleted as far as the CO is concerned
        const ImageId id(cluster_id, name, ns, image_name);
        librbd::Image image;
        if (!ValidateImageId(id).ok() || !Open(p->io, id, true, false, &image).ok()) continue;
        absl::StatusOr<ImageInfo> info = InfoOf(id, image);
        if (info.ok()) out.push_back(std::move(*info));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const ImageInfo& a, const ImageInfo& b) {
    return EncodeVolumeId(a.id) < EncodeVolumeId(b.id);
  });
  return out;
}

}  // namespace rbdcsi
