// Request validation shared by the node and controller services: everything here runs before
// any effect, and every failure is INVALID_ARGUMENT naming the field.
#ifndef RBDCSI_DRIVER_VALIDATION_H_
#define RBDCSI_DRIVER_VALIDATION_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "csi.pb.h"

namespace rbdcsi {

// INVALID_ARGUMENT "<field> is required" when `value` is empty.
absl::Status RequireNonEmpty(std::string_view value, std::string_view field);

// Required, absolute, at most 4095 bytes, no NUL, no "." or ".." component.
absl::Status ValidatePath(std::string_view path, std::string_view field);

// A volume id: non-empty, at most 1024 bytes, no NUL.
absl::Status ValidateVolumeId(std::string_view id);

// What a VolumeCapability asks for, once checked.
struct Capability {
  bool block = false;
  std::string fs_type;                   // mount only; "" in the request becomes ext4
  std::vector<std::string> mount_flags;  // mount only; ApplyMountFlagPolicy's result
  csi::v1::VolumeCapability::AccessMode::Mode mode = csi::v1::VolumeCapability::AccessMode::UNKNOWN;
  bool read_only_mode = false;  // the access mode allows no writer
};

// INVALID_ARGUMENT when the access type or mode is missing or unknown, the filesystem is not
// ext4/xfs, a mount flag breaks the mount-flag policy (mounter/mount_flags.h; "ro" is added for
// read-only modes), or a multi-node writer mode is asked for a filesystem volume.
absl::StatusOr<Capability> ParseCapability(const csi::v1::VolumeCapability& cap);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_VALIDATION_H_
