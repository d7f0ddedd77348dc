#include "driver/volume_locks.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace rbdcsi {

VolumeLockGuard::~VolumeLockGuard() {
  if (locks_ != nullptr) locks_->Unlock(id_);
}

ImageLockGuard::~ImageLockGuard() {
  if (locks_ != nullptr) locks_->UnlockImage(key_);
}

absl::Status VolumeLocks::TryLock(const std::string& volume_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!held_.insert(volume_id).second) {
    return absl::AbortedError(
        absl::StrCat("an operation on volume ", volume_id, " is already in progress"));
  }
  return absl::OkStatus();
}

void VolumeLocks::Unlock(const std::string& volume_id) {
  std::lock_guard<std::mutex> lock(mu_);
  held_.erase(volume_id);
}

absl::Status VolumeLocks::TryLockImage(const ImageId& image, std::string_view holder) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = images_held_.emplace(image.Key(), std::string(holder));
  if (!inserted) {
    return absl::AbortedError(absl::StrCat("an operation on image ", image.ToString(),
                                           " is already in progress (volume ", it->second, ")"));
  }
  return absl::OkStatus();
}

void VolumeLocks::UnlockImage(const std::string& image_key) {
  std::lock_guard<std::mutex> lock(mu_);
  images_held_.erase(image_key);
}

}  // namespace rbdcsi
