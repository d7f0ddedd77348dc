// Per-volume try-locks: a second operation on a volume while one runs is refused, not queued.
#ifndef RBDCSI_DRIVER_VOLUME_LOCKS_H_
#define RBDCSI_DRIVER_VOLUME_LOCKS_H_

#include <mutex>
#include <set>
#include <string>

#include "absl/status/status.h"

namespace rbdcsi {

class VolumeLocks;

// Holds the lock on one volume until destroyed.
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

// Thread-safe.
class VolumeLocks {
 public:
  // ABORTED ("an operation on volume X is already in progress") when the volume is locked.
  absl::Status TryLock(const std::string& volume_id);
  void Unlock(const std::string& volume_id);

 private:
  std::mutex mu_;
  std::set<std::string> held_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_VOLUME_LOCKS_H_
