// The "loop" mapper: images are sparse files on loop devices; no Ceph at all.
#ifndef RBDCSI_RBD_LOOP_MAPPER_H_
#define RBDCSI_RBD_LOOP_MAPPER_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rbd/loop_device.h"
#include "rbd/loop_images.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// Maps images of a LoopImageStore to loop devices. It only ever reports or detaches devices whose
// backing file lies in the store's images directory. MapOptions' monitors, user and key are
// ignored. Thread-safe for different images.
class LoopMapper : public Mapper {
 public:
  LoopMapper(LoopImageStore store, std::unique_ptr<LoopDevices> devices);

  std::string_view Name() const override { return "loop"; }
  // List() shows only loop devices of files in the store's images directory.
  MapperTraits Traits() const override {
    MapperTraits traits;
    traits.lists_only_own = true;
    return traits;
  }

  // NOT_FOUND when the image file does not exist, INVALID_ARGUMENT for a malformed spec.
  absl::StatusOr<MappedDevice> Map(const MapOptions& options) override;
  // Detaches `device.path` if it is attached to this store (to `device.image` when that is
  // set); anything else, or a device that is not attached, is OK and left alone. Busy as
  // LoopDevices::Detach. INVALID_ARGUMENT for an empty path.
  absl::Status Unmap(const MappedDevice& device) override;
  absl::StatusOr<std::vector<MappedDevice>> List() override;
  // Reads the preferred device's attributes, else every device's backing file and the rest of
  // the attributes only for the image's devices.
  absl::StatusOr<std::optional<MappedDevice>> Find(const ImageSpec& image,
                                                   const std::string& preferred_path) override;
  // NOT_FOUND when `device.path` is not a loop device of this store.
  absl::Status RefreshCapacity(const MappedDevice& device) override;

  const LoopImageStore& store() const { return store_; }

 private:
  // The attached loop device `path` if it belongs to this store.
  absl::StatusOr<std::optional<MappedDevice>> FindOwn(const std::string& path);
  // The image of this store that `backing_file` is, if any; `canonical_images` is
  // CanonicalPath(store_.ImagesDir()), computed once per search.
  std::optional<ImageSpec> SpecOf(std::string_view backing_file,
                                  const std::string& canonical_images) const;

  const LoopImageStore store_;
  const std::unique_ptr<LoopDevices> devices_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_LOOP_MAPPER_H_
