// Images of the "loop" mapper: sparse files under the plugin's data directory.
#ifndef RBDCSI_RBD_LOOP_IMAGES_H_
#define RBDCSI_RBD_LOOP_IMAGES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rbd/image_store.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// Stores each image as the sparse file `<data_dir>/images/<pool>/<image>.img`. Sizes are rounded
// up to a multiple of 512 bytes, the loop driver's smallest sector. Thread-safe; concurrent
// calls on the same image are serialized by the caller (per-image lock).
//
// As an ImageStore it holds the images of the empty cluster id, in the default namespace only
// (INVALID_ARGUMENT otherwise). Snapshots are read-only copies (FICLONE where the filesystem
// can, else sparse copies) under <data_dir>/snapshots, clones are copies of those or of images.
class LoopImageStore : public ImageStore {
 public:
  static constexpr uint64_t kSectorSize = kImageSectorSize;

  // `mapped` (may be null: nothing is ever watched) lists the loop devices of these images; it
  // tells Watchers() and Delete() who has an image open. It must outlive the store.
  explicit LoopImageStore(std::string data_dir, Mapper* mapped = nullptr);

  // OK for 1-128 characters of [A-Za-z0-9._-] that do not start with '.'; INVALID_ARGUMENT
  // otherwise. Pool and image names both follow this rule.
  static absl::Status ValidateName(std::string_view name);
  // Validates both names of `spec`; the message names the offending field.
  static absl::Status ValidateSpec(const ImageSpec& spec);

  const std::string& data_dir() const { return data_dir_; }
  // `<data_dir>/images`: every backing file of this store lies below it.
  std::string ImagesDir() const;
  // `<data_dir>/images/<pool>/<image>.img`; the spec is not validated.
  std::string PathOf(const ImageSpec& spec) const;
  // The inverse of PathOf() for paths below `images_dir` (which may be a canonical spelling of
  // ImagesDir()); nullopt for any other path or invalid names.
  static std::optional<ImageSpec> SpecOfPath(std::string_view images_dir, std::string_view path);

  // Creates a sparse image of `size_bytes` (rounded up). ALREADY_EXISTS if the image exists,
  // INVALID_ARGUMENT for a bad spec or a size of 0. The file appears atomically, complete.
  absl::Status Create(const ImageSpec& spec, uint64_t size_bytes);
  // Grows the image to `new_size` (rounded up); a size equal to the current one is OK.
  // INVALID_ARGUMENT when it would shrink, NOT_FOUND when the image does not exist.
  absl::Status Resize(const ImageSpec& spec, uint64_t new_size);
  // Removes the image; a missing image is OK. A loop device attached to it keeps the data alive
  // until it is detached.
  absl::Status Delete(const ImageSpec& spec);
  // The image size in bytes; NOT_FOUND when the image does not exist.
  absl::StatusOr<uint64_t> Size(const ImageSpec& spec) const;
  // All images, sorted by pool then image; empty when nothing was created yet.
  absl::StatusOr<std::vector<ImageSpec>> List() const;

  // `size` rounded up to kSectorSize; INVALID_ARGUMENT when that does not fit in off_t.
  static absl::StatusOr<uint64_t> RoundSize(uint64_t size);

  // ImageStore (contracts there).
  absl::StatusOr<ImageInfo> Create(const ImageId& id, uint64_t size_bytes,
                                   const CreateOptions& options) override;
  absl::Status Delete(const ImageId& id) override;
  absl::Status Resize(const ImageId& id, uint64_t new_size) override;
  absl::StatusOr<ImageInfo> Info(const ImageId& id) override;
  absl::StatusOr<std::vector<ImageInfo>> List(std::string_view pool) override;
  absl::StatusOr<SnapshotInfo> CreateSnapshot(const ImageId& source,
                                              std::string_view name) override;
  absl::Status DeleteSnapshot(const SnapshotId& id) override;
  absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(
      const std::optional<ImageId>& source) override;
  absl::StatusOr<ImageInfo> CloneFromSnapshot(const SnapshotId& snapshot, const ImageId& dst,
                                              uint64_t size_bytes) override;
  absl::StatusOr<ImageInfo> CloneFromImage(const ImageId& src, const ImageId& dst,
                                           uint64_t size_bytes) override;
  absl::StatusOr<uint64_t> Capacity(std::string_view pool) override;
  absl::StatusOr<std::vector<std::string>> Watchers(const ImageId& id) override;
  absl::Status SetQos(const ImageId& id, const std::map<std::string, uint64_t>& limits) override;

 private:
  // <data_dir>/snapshots/<pool>/<snapshot>/<image>.img
  std::string SnapshotPath(const SnapshotId& id) const;
  // NOT_FOUND when the snapshot does not exist.
  absl::StatusOr<SnapshotInfo> SnapshotInfoOf(const SnapshotId& id) const;

  std::string data_dir_;
  Mapper* mapped_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_LOOP_IMAGES_H_
