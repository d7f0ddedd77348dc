#include "tests/driver/image_ledger.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"

namespace rbdcsi {

std::vector<std::string> ImageLedger::Violations() {
  std::lock_guard<std::mutex> lock(mu_);
  return violations_;
}

size_t ImageLedger::mapped() {
  std::lock_guard<std::mutex> lock(mu_);
  return device_image_.size();
}

size_t ImageLedger::mounts() {
  std::lock_guard<std::mutex> lock(mu_);
  return mounts_.size();
}

int ImageLedger::max_mounts_per_image() {
  std::lock_guard<std::mutex> lock(mu_);
  return max_per_image_;
}

int ImageLedger::FilesystemMountsOf(const std::string& image) const {
  int n = 0;
  for (const Mount& m : mounts_) n += !m.bind && m.image == image;
  return n;
}

ImageLedger::Mount ImageLedger::BindOf(const std::string& source, const std::string& target) const {
  Mount bind{target, "", "", true};
  auto dev = device_image_.find(source);
  if (dev != device_image_.end()) {
    bind.device = source;  // a block volume: its device node
    bind.image = dev->second;
  }
  for (const Mount& m : mounts_) {
    if (m.target != source) continue;
    bind.device = m.device;  // the topmost mount at `source` (the staging path)
    bind.image = m.image;
  }
  return bind;
}

void Jitter::operator()() {
  unsigned micros;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seed_ = seed_ * 1103515245u + 12345u;
    micros = (seed_ >> 16) % 200;
  }
  if (micros < 50) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(micros));
  }
}

absl::StatusOr<MappedDevice> CheckedMapper::Map(const MapOptions& options) {
  (*jitter_)();
  std::lock_guard<std::mutex> lock(ledger_->mu_);
  absl::StatusOr<MappedDevice> d = inner_->Map(options);
  if (!d.ok()) return d;
  const std::string image = options.image.ToString();
  for (const auto& [device, other] : ledger_->device_image_) {
    if (other == image) {
      ledger_->Violate(
          absl::StrCat("image ", image, " mapped at ", d->path, " while mapped at ", device));
    }
  }
  ledger_->device_image_[d->path] = image;
  return d;
}

absl::Status CheckedMapper::Unmap(const MappedDevice& device) {
  (*jitter_)();
  std::lock_guard<std::mutex> lock(ledger_->mu_);
  for (const ImageLedger::Mount& m : ledger_->mounts_) {
    if (m.device == device.path) {
      return BusyError(absl::StrCat(device.path, " is mounted at ", m.target));
    }
  }
  absl::Status st = inner_->Unmap(device);
  if (st.ok()) ledger_->device_image_.erase(device.path);
  return st;
}

absl::StatusOr<std::vector<MappedDevice>> CheckedMapper::List() {
  (*jitter_)();
  return inner_->List();
}

absl::Status CheckedMounter::Mount(const std::string& source, const std::string& target,
                                   const std::string& fstype, const std::string& options) {
  (*jitter_)();
  std::lock_guard<std::mutex> lock(ledger_->mu_);
  auto dev = ledger_->device_image_.find(source);
  if (dev == ledger_->device_image_.end()) {
    ledger_->Violate(absl::StrCat("mount of ", source, " at ", target, ", a device not mapped"));
  }
  const std::string image = dev == ledger_->device_image_.end() ? "" : dev->second;
  const int before = ledger_->FilesystemMountsOf(image);
  if (!image.empty() && before > 0) {
    std::string where;
    for (const ImageLedger::Mount& m : ledger_->mounts_) {
      if (!m.bind && m.image == image) absl::StrAppend(&where, " ", m.target, " (", m.device, ")");
    }
    ledger_->Violate(absl::StrCat("image ", image, " mounted at ", target, " (", source,
                                  ") while mounted at", where));
  }
  absl::Status st = inner_->Mount(source, target, fstype, options);
  if (!st.ok()) return st;
  ledger_->mounts_.push_back({target, source, image, false});
  ledger_->max_per_image_ = std::max(ledger_->max_per_image_, before + 1);
  return st;
}

absl::Status CheckedMounter::BindMount(const std::string& source, const std::string& target,
                                       bool read_only) {
  (*jitter_)();
  std::lock_guard<std::mutex> lock(ledger_->mu_);
  const ImageLedger::Mount bind = ledger_->BindOf(source, target);
  if (bind.image.empty()) {
    ledger_->Violate(absl::StrCat("bind of ", source, " at ", target, ": no volume there"));
  }
  absl::Status st = inner_->BindMount(source, target, read_only);
  if (st.ok()) ledger_->mounts_.push_back(bind);
  return st;
}

absl::Status CheckedMounter::Unmount(const std::string& target) {
  (*jitter_)();
  std::lock_guard<std::mutex> lock(ledger_->mu_);
  absl::Status st = inner_->Unmount(target);
  if (!st.ok()) return st;
  auto& mounts = ledger_->mounts_;
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
    if (it->target == target) {
      mounts.erase(std::next(it).base());
      break;
    }
  }
  return st;
}

absl::StatusOr<std::vector<MountInfo>> CheckedMounter::List() {
  (*jitter_)();
  return inner_->List();
}

}  // namespace rbdcsi
