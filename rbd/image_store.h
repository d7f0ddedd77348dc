// The controller's only view of storage: images, their snapshots and clones, in some backend
// (sparse files on this node, or a Ceph cluster).
#ifndef RBDCSI_RBD_IMAGE_STORE_H_
#define RBDCSI_RBD_IMAGE_STORE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "rbd/image_id.h"

namespace rbdcsi {

// Every store's image sizes are whole multiples of this (the block layer's smallest sector).
inline constexpr uint64_t kImageSectorSize = 512;
// The largest volume rbdcsi provisions, on every backend: 1 EiB (2^60 bytes), the largest ext4
// file system (2^48 blocks of 4 KiB), far from where a size rounded up to whole sectors or
// objects stops fitting CSI's int64 fields. Larger sizes are OUT_OF_RANGE.
inline constexpr uint64_t kMaxImageSize = uint64_t{1} << 60;

struct CreateOptions {
  std::vector<std::string> features;  // e.g. "layering"; a store may ignore what it lacks
  std::string data_pool;              // erasure-coded data pool; empty: the image's pool
};

struct ImageInfo {
  ImageId id;
  uint64_t size_bytes = 0;
  std::chrono::system_clock::time_point created{};
  // What the image was made from, if anything.
  std::optional<SnapshotId> source_snapshot;
  std::optional<ImageId> source_image;
};

struct SnapshotInfo {
  SnapshotId id;   // how the store names the snapshot (EncodeSnapshotId gives the CSI id)
  ImageId source;  // the image it was taken of
  uint64_t size_bytes = 0;
  std::chrono::system_clock::time_point created{};
  bool ready_to_use = false;
};

// Credentials for a store that needs them. `key` is a secret: a store never puts it in an
// argv, a log line or an error.
struct Credentials {
  std::string user;
  std::string key;
};

// Implementations are thread-safe; callers serialize operations on one image (per-image lock).
// No method's error text contains credentials.
class ImageStore {
 public:
  virtual ~ImageStore() = default;

  // Creates an image of `size_bytes` rounded up to kImageSectorSize. ALREADY_EXISTS when the
  // image exists (whatever its size), INVALID_ARGUMENT for an invalid id or a size of 0,
  // OUT_OF_RANGE when the size is larger than the store can hold (at most kMaxImageSize).
  virtual absl::StatusOr<ImageInfo> Create(const ImageId& id, uint64_t size_bytes,
                                           const CreateOptions& options) = 0;

  // Removes the image; a missing image is OK. FAILED_PRECONDITION naming the watchers (e.g.
  // "mapped at /dev/loop3 on this node") while any client has it open. An image with
  // snapshots or clones leaves the CO's view (List no longer shows it, e.g. moved to a trash)
  // while its snapshots and clones stay usable.
  virtual absl::Status Delete(const ImageId& id) = 0;

  // Grows the image to `new_size` rounded up; the current size is OK. INVALID_ARGUMENT when it
  // would shrink, NOT_FOUND when the image does not exist, OUT_OF_RANGE above kMaxImageSize.
  virtual absl::Status Resize(const ImageId& id, uint64_t new_size) = 0;

  // NOT_FOUND when the image does not exist.
  virtual absl::StatusOr<ImageInfo> Info(const ImageId& id) = 0;

  // The images of `pool` (of every pool when empty), sorted by EncodeVolumeId of their ids.
  virtual absl::StatusOr<std::vector<ImageInfo>> List(std::string_view pool) = 0;

  // Takes a snapshot named `name` of `source`. Idempotent for the same source and name;
  // ALREADY_EXISTS when `name` is taken by a snapshot of another image; NOT_FOUND when the
  // source does not exist; UNIMPLEMENTED when the store has no snapshots.
  virtual absl::StatusOr<SnapshotInfo> CreateSnapshot(const ImageId& source,
                                                      std::string_view name) = 0;

  // OK when the snapshot does not exist. FAILED_PRECONDITION only when the store cannot keep
  // clones made from it usable without it.
  virtual absl::Status DeleteSnapshot(const SnapshotId& id) = 0;

  // Snapshots of `source`, or of every image when nullopt.
  virtual absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(
      const std::optional<ImageId>& source) = 0;

  // Creates `dst` from a snapshot / another image's current content, at least `size_bytes`
  // large (the source's size when 0). ALREADY_EXISTS when `dst` exists, NOT_FOUND when the
  // source does not, OUT_OF_RANGE when `size_bytes` is smaller than the source.
  virtual absl::StatusOr<ImageInfo> CloneFromSnapshot(const SnapshotId& snapshot,
                                                      const ImageId& dst, uint64_t size_bytes) = 0;
  virtual absl::StatusOr<ImageInfo> CloneFromImage(const ImageId& src, const ImageId& dst,
                                                   uint64_t size_bytes) = 0;

  // Bytes still available for new images in `pool`.
  virtual absl::StatusOr<uint64_t> Capacity(std::string_view pool) = 0;

  // Sets the image's I/O limits (librbd's rbd_qos_* settings: keys "iops", "bps", "read_iops",
  // "write_iops", "read_bps", "write_bps"; 0 removes a limit); limits not named stay.
  // NOT_FOUND when the image does not exist. Clients that honour them: librbd-based mappers
  // (rbd-fuse, rbd-nbd), not krbd. The loop backend only records them.
  virtual absl::Status SetQos(const ImageId& id, const std::map<std::string, uint64_t>& limits) = 0;

  // Who has the image open: client addresses for Ceph, device paths for the loop backend.
  // Empty when nobody; NOT_FOUND when the image does not exist.
  virtual absl::StatusOr<std::vector<std::string>> Watchers(const ImageId& id) = 0;
};

// Hands out the store for a cluster, opened with the caller's credentials. Thread-safe.
class ImageStoreProvider {
 public:
  virtual ~ImageStoreProvider() = default;

  // The store holding the images of `cluster_id` (empty: the loop backend). The pointer stays
  // valid as long as the provider. NOT_FOUND for a cluster this plugin is not configured for;
  // UNAVAILABLE when the cluster cannot be reached; PERMISSION_DENIED for rejected credentials.
  virtual absl::StatusOr<ImageStore*> For(std::string_view cluster_id,
                                          const Credentials& credentials) = 0;

  // Every cluster id For() serves ("" for the loop backend), for the calls that span them all
  // (ListVolumes, ListSnapshots without a source).
  virtual std::vector<std::string> ClusterIds() = 0;
};

// A provider of one store that needs no credentials, for one cluster id (for the loop
// backend: the empty one).
class SingleStoreProvider : public ImageStoreProvider {
 public:
  // `store` must outlive the provider.
  SingleStoreProvider(ImageStore* store, std::string cluster_id = "")
      : store_(store), cluster_id_(std::move(cluster_id)) {}

  absl::StatusOr<ImageStore*> For(std::string_view cluster_id, const Credentials&) override {
    if (cluster_id != cluster_id_) {
      return absl::NotFoundError(
          absl::StrCat("no cluster \"", AsAbsl(cluster_id), "\" is configured for this plugin"));
    }
    return store_;
  }
  std::vector<std::string> ClusterIds() override { return {cluster_id_}; }

 private:
  ImageStore* const store_;
  const std::string cluster_id_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_IMAGE_STORE_H_
