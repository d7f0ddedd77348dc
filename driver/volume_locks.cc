#include "driver/volume_locks.h"

#include "absl/strings/str_cat.h"

namespace rbdcsi {

VolumeLockGuard::~VolumeLockGuard() {
  if (locks_ != nullptr) locks_->Unlock(id_);
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

}  // namespace rbdcsi
