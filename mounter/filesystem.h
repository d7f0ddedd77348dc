// Filesystems on block devices: probe, create, grow.
#ifndef RBDCSI_MOUNTER_FILESYSTEM_H_
#define RBDCSI_MOUNTER_FILESYSTEM_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/command.h"

namespace rbdcsi {

// Implementations are thread-safe for different devices.
class Filesystems {
 public:
  virtual ~Filesystems() = default;

  // The filesystem (or other signature, e.g. "LVM2_member") found on `device`; "" when the
  // device is blank. NOT_FOUND when the device does not exist.
  virtual absl::StatusOr<std::string> Probe(const std::string& device) = 0;

  // Creates `fstype` (ext4 or xfs) on `device`. INVALID_ARGUMENT for other types.
  virtual absl::Status Format(const std::string& device, const std::string& fstype) = 0;

  // Grows the filesystem mounted at `mount_point` from `device` to the device's size.
  virtual absl::Status Grow(const std::string& device, const std::string& mount_point,
                            const std::string& fstype) = 0;
};

// Supported filesystem types for mount volumes.
bool IsSupportedFilesystem(const std::string& fstype);

std::unique_ptr<Filesystems> NewRealFilesystems(CommandRunner& runner);

}  // namespace rbdcsi

#endif  // RBDCSI_MOUNTER_FILESYSTEM_H_
