// Try-locks per volume id and per image: a second operation on a volume, or on an image under
// any of its names, while one runs is refused (ABORTED), not queued.
#ifndef RBDCSI_DRIVER_VOLUME_LOCKS_H_
#define RBDCSI_DRIVER_VOLUME_LOCKS_H_

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "rbd/image_id.h"

namespace rbdcsi {

class VolumeLocks;

// Holds the lock on one volume id until destroyed.
class VolumeLockGuard {
 public:
  VolumeLockGuard(VolumeLocks* locks, std::string id) : locks_(locks), id_(std::move(id)) {}
  VolumeLockGuard(VolumeLockGuard&& o) noexcept : locks_(o.locks_), id_(std::move(o.id_)) {
    o.locks_ = nullptr;
  }
  VolumeLockGuard(const VolumeLockGuard&) = delete;
  VolumeLockGuard& operator=(const VolumeLockGuard&) = delete;
  VolumeLockGuard& operator=(VolumeLockGuard&&) = delete;
  ~VolumeLockGuard();

 private:
  VolumeLocks* locks_;
  std::string id_;
};

// Holds the lock on one image (by ImageId::Key()) until destroyed.
class ImageLockGuard {
 public:
  ImageLockGuard(VolumeLocks* locks, const ImageId& image) : locks_(locks), key_(image.Key()) {}
  ImageLockGuard(ImageLockGuard&& o) noexcept : locks_(o.locks_), key_(std::move(o.key_)) {
    o.locks_ = nullptr;
  }
  ImageLockGuard(const ImageLockGuard&) = delete;
  ImageLockGuard& operator=(const ImageLockGuard&) = delete;
  ImageLockGuard& operator=(ImageLockGuard&&) = delete;
  ~ImageLockGuard();

 private:
  VolumeLocks* locks_;
  std::string key_;
};

// Thread-safe. Volume-id locks and image locks are separate key spaces; callers that take both
// take the volume lock first. Neither ever blocks, so no order can deadlock.
class VolumeLocks {
 public:
  // ABORTED ("an operation on volume X is already in progress") when the volume is locked.
  absl::Status TryLock(const std::string& volume_id);
  void Unlock(const std::string& volume_id);

  // ABORTED ("an operation on image X is already in progress (volume Y)") when the image is
  // locked, under whatever volume id. `holder` names this caller's volume in that message.
  absl::Status TryLockImage(const ImageId& image, std::string_view holder);
  void UnlockImage(const std::string& image_key);

 private:
  std::mutex mu_;
  std::set<std::string> held_;
  std::map<std::string, std::string> images_held_;  // image key -> holder
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_VOLUME_LOCKS_H_
