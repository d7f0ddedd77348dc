// The "fuse" mapper, for hosts without the rbd and nbd kernel modules: one `rbd-fuse -r IMAGE`
// process per volume exposes the image as a file, and a loop device over that file is the
// block device. rbd-fuse holds a watcher on the image while it runs.
#ifndef RBDCSI_RBD_FUSE_MAPPER_H_
#define RBDCSI_RBD_FUSE_MAPPER_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rbd/loop_device.h"
#include "rbd/mapper.h"

namespace rbdcsi {

struct FuseMapperOptions {
  std::string rbd_fuse_program = "rbd-fuse";
  // One directory per mapped image: the FUSE mount point, rbd-fuse's configuration and log,
  // and (only until rbd-fuse has connected) its key file. Should be on tmpfs.
  std::string dir = "/run/rbdcsi/fuse";
  // How long Map waits for rbd-fuse to connect and mount; also its client_mount_timeout.
  std::chrono::seconds timeout{20};
};

// Thread-safe for different images; callers serialize per image. rbd-fuse processes are
// started in their own session and outlive a restart of the plugin, like krbd mappings.
class FuseMapper : public Mapper {
 public:
  FuseMapper(FuseMapperOptions options, std::unique_ptr<LoopDevices> devices);

  std::string_view Name() const override { return "fuse"; }
  MapperTraits Traits() const override;

  // Starts rbd-fuse for the image (monitors, user and key from `options`; the key reaches
  // rbd-fuse in a 0600 file that is removed once it has connected), then attaches a loop
  // device to the image file. NOT_FOUND when the image does not exist, UNAVAILABLE when
  // rbd-fuse could not connect in time; everything started is undone on error.
  absl::StatusOr<MappedDevice> Map(const MapOptions& options) override;

  // Detaches the loop device only when nothing holds it (IsBusy() otherwise, and nothing
  // else changes), then unmounts the FUSE directory (never lazily), waits for rbd-fuse to
  // exit and removes the directory. A device that is not (any more) a fuse mapping is OK; an
  // rbd-fuse of device.image left without its loop device is stopped then. A device whose
  // rbd-fuse died (the kernel then reports its backing file outside the directory) is found
  // through the attachment Map() recorded: that device number with that disk sequence number,
  // and no other device.
  absl::Status Unmap(const MappedDevice& device) override;

  // The loop devices over an image file of a live rbd-fuse of this mapper. A mapping whose
  // rbd-fuse died is left out (its volume reads as no longer mapped: abnormal) until Unmap
  // cleans it up.
  absl::StatusOr<std::vector<MappedDevice>> List() override;

  // rbd-fuse reports the image's new size (attribute caching is off); the loop device then
  // picks it up.
  absl::Status RefreshCapacity(const MappedDevice& device) override;

 private:
  struct Mapping {
    std::string dir;  // the per-image directory
    ImageSpec image;
    pid_t pid = -1;
  };

  std::string DirFor(const MapOptions& options) const;
  // The mapping whose image file backs `backing_file`, if it is one of ours.
  std::optional<Mapping> MappingOf(const std::string& backing_file) const;
  // The mapping in `dir` (its image and rbd-fuse pid files), if it is one.
  std::optional<Mapping> MappingIn(const std::string& dir) const;
  // The mapping whose recorded attachment (the `loop` file Map() wrote) is `info`'s: the same
  // device, device number and disk sequence number. Never guesses without a sequence number.
  std::optional<Mapping> MappingAttachedTo(const LoopInfo& info) const;
  bool Alive(const Mapping& m) const;
  // The attached device `dev`, recorded in `dir`'s `loop` file for MappingAttachedTo().
  absl::StatusOr<LoopInfo> RecordAttachment(const std::string& dir, const std::string& dev);
  absl::StatusOr<pid_t> StartRbdFuse(const std::string& dir, const MapOptions& options);
  // Unmounts the FUSE directory, waits for rbd-fuse, removes the directory.
  absl::Status StopRbdFuse(const Mapping& m);
  // Stops the rbd-fuse of `image` whose file no loop device uses any more (an unmap that
  // detached the device but could not finish), so that it lets go of its watch.
  absl::Status StopOrphans(const ImageSpec& image, const std::vector<LoopInfo>& attached);

  const FuseMapperOptions options_;
  std::unique_ptr<LoopDevices> devices_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_FUSE_MAPPER_H_
