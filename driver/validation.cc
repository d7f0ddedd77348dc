#include "driver/validation.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "mounter/filesystem.h"
#include "mounter/mount_flags.h"

namespace rbdcsi {

using AccessMode = csi::v1::VolumeCapability::AccessMode;

absl::Status RequireNonEmpty(std::string_view value, std::string_view field) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), " is required"));
  return absl::OkStatus();
}

absl::Status ValidatePath(std::string_view path_view, std::string_view field_view) {
  const absl::string_view path = AsAbsl(path_view);
  const absl::string_view field = AsAbsl(field_view);
  RETURN_IF_ERROR(RequireNonEmpty(path_view, field_view));
  if (path.size() > 4095) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is longer than 4095 bytes"));
  }
  if (path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, " contains a NUL byte"));
  }
  if (!absl::StartsWith(path, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", path, "' must be an absolute path"));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == ".." || part == ".") {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " '", path, "' must not contain '.' or '..' components"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateVolumeId(std::string_view id) {
  RETURN_IF_ERROR(RequireNonEmpty(id, "volume_id"));
  if (id.size() > 1024) return absl::InvalidArgumentError("volume_id is longer than 1024 bytes");
  if (id.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("volume_id contains a NUL byte");
  }
  for (char c : id) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("volume_id contains a control character");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Capability> ParseCapability(const csi::v1::VolumeCapability& cap) {
  Capability out;
  if (!cap.has_access_mode()) {
    return absl::InvalidArgumentError("volume_capability.access_mode is required");
  }
  out.mode = cap.access_mode().mode();
  switch (out.mode) {
    case AccessMode::SINGLE_NODE_WRITER:
    case AccessMode::SINGLE_NODE_SINGLE_WRITER:
    case AccessMode::SINGLE_NODE_MULTI_WRITER:
      break;
    case AccessMode::SINGLE_NODE_READER_ONLY:
    case AccessMode::MULTI_NODE_READER_ONLY:
      out.read_only_mode = true;
      break;
    case AccessMode::MULTI_NODE_SINGLE_WRITER:
    case AccessMode::MULTI_NODE_MULTI_WRITER:
      if (cap.has_mount()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "access mode ", AccessMode::Mode_Name(out.mode),
            " is not supported for filesystem volumes: ext4/xfs would be corrupted by writers "
            "on several nodes"));
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "volume_capability.access_mode ", AccessMode::Mode_Name(out.mode), " is not supported"));
  }
  if (cap.has_block()) {
    out.block = true;
    return out;
  }
  if (!cap.has_mount()) {
    return absl::InvalidArgumentError("volume_capability.access_type is required: block or mount");
  }
  out.fs_type = cap.mount().fs_type().empty() ? "ext4" : cap.mount().fs_type();
  if (!IsSupportedFilesystem(out.fs_type)) {
    return absl::InvalidArgumentError(absl::StrCat("volume_capability.mount.fs_type '", out.fs_type,
                                                   "' is not supported: use ext4 or xfs"));
  }
  ASSIGN_OR_RETURN(out.mount_flags, ApplyMountFlagPolicy(out.fs_type,
                                                         {cap.mount().mount_flags().begin(),
                                                          cap.mount().mount_flags().end()},
                                                         out.read_only_mode));
  return out;
}

}  // namespace rbdcsi
