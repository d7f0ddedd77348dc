// The race tests' first line of proof (issue 8, "Races"): decorators of a Mapper and a Mounter
// that check, at every Map and every Mount and atomically with it, that no image is mapped
// twice and that no image has two filesystem mounts. Every violation is kept, none is sampled.
#ifndef RBDCSI_TESTS_DRIVER_IMAGE_LEDGER_H_
#define RBDCSI_TESTS_DRIVER_IMAGE_LEDGER_H_

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "mounter/mounter.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// What is mapped and mounted, by image. Thread-safe: one mutex, held across each checked call
// of the decorated fakes, so a check and the state change it checks are one atomic step.
class ImageLedger {
 public:
  // Every breach of the invariant seen so far, in words.
  std::vector<std::string> Violations();
  // Devices mapped and mounts (filesystem and bind) present now, for the end-state checks.
  size_t mapped();
  size_t mounts();
  // The most filesystem mounts any one image had at once (1 on a correct plugin).
  int max_mounts_per_image();

 private:
  friend class CheckedMapper;
  friend class CheckedMounter;
  struct Mount {
    std::string target, device, image;
    bool bind = false;
  };

  // Called with mu_ held.
  void Violate(std::string what) { violations_.push_back(std::move(what)); }
  int FilesystemMountsOf(const std::string& image) const;
  // What a bind of `source` (a mounted staging path or a mapped device) at `target` mounts.
  Mount BindOf(const std::string& source, const std::string& target) const;

  std::mutex mu_;
  std::map<std::string, std::string> device_image_;  // device path -> image
  std::vector<Mount> mounts_;                        // bottom first, like a mount table
  std::vector<std::string> violations_;
  int max_per_image_ = 0;
};

// Before each call, sleeps a few microseconds drawn from a seeded generator: the interleavings
// a fake's instant answers would never produce. Thread-safe.
class Jitter {
 public:
  explicit Jitter(unsigned seed) : seed_(seed) {}
  void operator()();

 private:
  std::mutex mu_;
  unsigned seed_;
};

// Decorates a Mapper: Map() fails the invariant when the image is already mapped; Unmap()
// answers busy (as the kernel does) while the device carries a mount.
class CheckedMapper : public Mapper {
 public:
  CheckedMapper(Mapper* inner, ImageLedger* ledger, Jitter* jitter)
      : inner_(inner), ledger_(ledger), jitter_(jitter) {}
  std::string_view Name() const override { return inner_->Name(); }
  MapperTraits Traits() const override { return inner_->Traits(); }
  absl::StatusOr<MappedDevice> Map(const MapOptions& options) override;
  absl::Status Unmap(const MappedDevice& device) override;
  absl::StatusOr<std::vector<MappedDevice>> List() override;
  absl::Status RefreshCapacity(const MappedDevice& device) override {
    return inner_->RefreshCapacity(device);
  }

 private:
  Mapper* inner_;
  ImageLedger* ledger_;
  Jitter* jitter_;
};

// Decorates a Mounter: Mount() fails the invariant when the image of its device already has a
// filesystem mount, or the device is not mapped at all.
class CheckedMounter : public Mounter {
 public:
  CheckedMounter(Mounter* inner, ImageLedger* ledger, Jitter* jitter)
      : inner_(inner), ledger_(ledger), jitter_(jitter) {}
  absl::Status Mount(const std::string& source, const std::string& target,
                     const std::string& fstype, const std::string& options) override;
  absl::Status BindMount(const std::string& source, const std::string& target,
                         bool read_only) override;
  absl::Status Unmount(const std::string& target) override;
  absl::StatusOr<std::vector<MountInfo>> List() override;

 private:
  Mounter* inner_;
  ImageLedger* ledger_;
  Jitter* jitter_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_DRIVER_IMAGE_LEDGER_H_
