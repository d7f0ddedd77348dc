#include "rbd/loop_mapper.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status.h"

namespace rbdcsi {

LoopMapper::LoopMapper(LoopImageStore store, std::unique_ptr<LoopDevices> devices)
    : store_(std::move(store)), devices_(std::move(devices)) {}

absl::StatusOr<MappedDevice> LoopMapper::Map(const MapOptions& options) {
  const ImageSpec& spec = options.image;
  const std::string what = absl::StrCat("mapping image ", spec.ToString());
  RETURN_IF_ERROR(Annotate(LoopImageStore::ValidateSpec(spec), what));
  RETURN_IF_ERROR(Annotate(store_.Size(spec).status(), what));
  const std::string backing = store_.PathOf(spec);
  absl::StatusOr<std::string> dev = devices_->Attach(backing, options.read_only);
  // The file may vanish between the check and the attach.
  if (!dev.ok()) return Annotate(dev.status(), what);

  // Only this device: listing every loop device per stage made N stages cost O(N^2) reads.
  absl::StatusOr<LoopInfo> info = devices_->Get(*dev);
  if (info.ok()) return MappedDevice{*dev, info->major, info->minor, spec};
  absl::Status status = info.status();
  if (absl::IsNotFound(status)) {
    status = absl::InternalError(absl::StrCat(*dev, " is missing from the list of loop devices"));
  }
  // Roll back: the caller never learns about the device, so nobody else would detach it.
  absl::Status undo = devices_->Detach(*dev, backing);
  if (!undo.ok()) {
    status = Annotate(status, absl::StrCat("rolling back failed too (", undo.message(), ")"));
  }
  return Annotate(status, absl::StrCat(what, " to ", *dev));
}

absl::StatusOr<std::optional<MappedDevice>> LoopMapper::FindOwn(const std::string& path) {
  absl::StatusOr<LoopInfo> info = devices_->Get(path);
  if (absl::IsNotFound(info.status())) return std::nullopt;
  RETURN_IF_ERROR(info.status());
  std::optional<ImageSpec> spec = SpecOf(info->backing_file, CanonicalPath(store_.ImagesDir()));
  if (!spec.has_value()) return std::nullopt;
  return MappedDevice{info->device, info->major, info->minor, *spec};
}

absl::StatusOr<std::optional<MappedDevice>> LoopMapper::Find(const ImageSpec& image,
                                                             const std::string& preferred_path) {
  if (!preferred_path.empty()) {
    ASSIGN_OR_RETURN(std::optional<MappedDevice> own, FindOwn(preferred_path));
    if (own.has_value() && own->image == image) return own;
  }
  const std::string canonical = CanonicalPath(store_.ImagesDir());
  ASSIGN_OR_RETURN(const std::vector<LoopInfo> attached,
                   devices_->ListWhere([&](std::string_view backing_file) {
                     std::optional<ImageSpec> spec = SpecOf(backing_file, canonical);
                     return spec.has_value() && *spec == image;
                   }));
  if (attached.empty()) return std::nullopt;
  const LoopInfo& info = attached.front();
  return MappedDevice{info.device, info.major, info.minor, image};
}

std::optional<ImageSpec> LoopMapper::SpecOf(std::string_view backing_file,
                                            const std::string& canonical_images) const {
  // The kernel reports canonical paths; the configured data directory may be spelled otherwise.
  const std::string images = store_.ImagesDir();
  std::optional<ImageSpec> spec = LoopImageStore::SpecOfPath(canonical_images, backing_file);
  if (!spec.has_value()) spec = LoopImageStore::SpecOfPath(images, backing_file);
  return spec;
}

absl::Status LoopMapper::Unmap(const MappedDevice& device) {
  if (device.path.empty()) return absl::InvalidArgumentError("unmapping: empty device path");
  std::string what = absl::StrCat("unmapping ", device.path);
  std::string backing;
  if (!device.image.pool.empty() || !device.image.image.empty()) {
    absl::StrAppend(&what, " (image ", device.image.ToString(), ")");
    RETURN_IF_ERROR(Annotate(LoopImageStore::ValidateSpec(device.image), what));
    backing = store_.PathOf(device.image);
  } else {
    ASSIGN_OR_RETURN(const std::optional<MappedDevice> own, FindOwn(device.path));
    if (!own.has_value()) return absl::OkStatus();  // not attached, or not ours
    backing = store_.PathOf(own->image);
  }
  return Annotate(devices_->Detach(device.path, backing), what);
}

absl::StatusOr<std::vector<MappedDevice>> LoopMapper::List() {
  ASSIGN_OR_RETURN(const std::vector<LoopInfo> attached, devices_->List());
  const std::string canonical = CanonicalPath(store_.ImagesDir());
  std::vector<MappedDevice> out;
  for (const LoopInfo& info : attached) {
    std::optional<ImageSpec> spec = SpecOf(info.backing_file, canonical);
    if (spec.has_value()) out.push_back(MappedDevice{info.device, info.major, info.minor, *spec});
  }
  return out;
}

absl::Status LoopMapper::RefreshCapacity(const MappedDevice& device) {
  const std::string what = absl::StrCat("refreshing the capacity of ", device.path);
  ASSIGN_OR_RETURN(const std::optional<MappedDevice> own, FindOwn(device.path));
  if (!own.has_value()) {
    return absl::NotFoundError(absl::StrCat(what, ": not a loop device of this plugin"));
  }
  return Annotate(devices_->SetCapacity(device.path), what);
}

}  // namespace rbdcsi
