#include "rbd/image_id.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/hash.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

bool IsPrintableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

absl::Status NotFound(std::string_view what, std::string_view id) {
  return absl::NotFoundError(
      absl::StrCat(AsAbsl(what), " ", AsAbsl(id), " names no image this plugin knows"));
}

// INVALID_ARGUMENT for ids no CSI client should send; OK for anything merely unknown.
absl::Status CheckNotJunk(std::string_view id, std::string_view field) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(AsAbsl(field), " is required"));
  if (id.size() > kMaxIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(field), " is longer than ", kMaxIdLength, " bytes"));
  }
  if (!IsPrintableAscii(id)) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(field), " contains control or non-ASCII bytes"));
  }
  return absl::OkStatus();
}

// Decodes without the junk check; nullopt for anything that is not a canonical encoding.
std::optional<ImageId> Parse(std::string_view id) {
  ImageId out;
  const size_t colon = id.find(':');
  if (colon != std::string_view::npos) {
    out.cluster_id = std::string(id.substr(0, colon));
    id.remove_prefix(colon + 1);
  }
  std::vector<std::string> parts = absl::StrSplit(AsAbsl(id), '/');
  if (parts.size() == 2) {
    out.pool = parts[0];
    out.image = parts[1];
  } else if (parts.size() == 3) {
    out.pool = parts[0];
    out.rados_namespace = parts[1];
    out.image = parts[2];
  } else {
    return std::nullopt;
  }
  // A present cluster or namespace must be a name: "c::p/i", ":p/i" and "p//i" are not ids.
  if (colon != std::string_view::npos && out.cluster_id.empty()) return std::nullopt;
  if (parts.size() == 3 && out.rados_namespace.empty()) return std::nullopt;
  if (!ValidateImageId(out).ok()) return std::nullopt;
  return out;
}

}  // namespace

absl::Status ValidateImageName(std::string_view name_view, std::string_view field_view) {
  const absl::string_view name = AsAbsl(name_view);
  const absl::string_view field = AsAbsl(field_view);
  if (name.empty() || name.size() > kMaxImageNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " \"", IsPrintableAscii(name_view) ? name.substr(0, 128) : "",
                     "\" must be 1 to ", kMaxImageNameLength, " characters long"));
  }
  if (!std::all_of(name.begin(), name.end(), IsNameChar)) {
    // The name is user input: show only what is safe to print.
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must consist of the characters A-Z, a-z, 0-9, '.', '_' and '-'"));
  }
  if (name.front() == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " \"", name, "\" must not start with '.'"));
  }
  return absl::OkStatus();
}

std::string ImageId::Key() const {
  // '/' is in no name, so the four parts cannot run into each other.
  return absl::StrCat(cluster_id, "/", pool, "/", rados_namespace, "/", image);
}

std::string ImageId::ToString() const { return EncodeVolumeId(*this); }

absl::Status ValidateImageId(const ImageId& id) {
  if (!id.cluster_id.empty()) RETURN_IF_ERROR(ValidateImageName(id.cluster_id, "cluster id"));
  RETURN_IF_ERROR(ValidateImageName(id.pool, "pool"));
  if (!id.rados_namespace.empty()) {
    RETURN_IF_ERROR(ValidateImageName(id.rados_namespace, "rados namespace"));
  }
  RETURN_IF_ERROR(ValidateImageName(id.image, "image"));
  const size_t length = EncodeVolumeId(id).size();
  if (length > kMaxIdLength) {
    return absl::InvalidArgumentError(absl::StrCat("the volume id of image ", EncodeVolumeId(id),
                                                   " would be ", length, " bytes, more than ",
                                                   kMaxIdLength));
  }
  return absl::OkStatus();
}

std::string EncodeVolumeId(const ImageId& id) {
  std::string out;
  if (!id.cluster_id.empty()) absl::StrAppend(&out, id.cluster_id, ":");
  absl::StrAppend(&out, id.pool, "/");
  if (!id.rados_namespace.empty()) absl::StrAppend(&out, id.rados_namespace, "/");
  absl::StrAppend(&out, id.image);
  return out;
}

absl::StatusOr<ImageId> DecodeVolumeId(std::string_view volume_id) {
  RETURN_IF_ERROR(CheckNotJunk(volume_id, "volume_id"));
  std::optional<ImageId> id = Parse(volume_id);
  if (!id) return NotFound("volume", volume_id);
  return *std::move(id);
}

absl::Status ValidateSnapshotId(const SnapshotId& id) {
  RETURN_IF_ERROR(ValidateImageId(id.image));
  RETURN_IF_ERROR(ValidateImageName(id.snapshot, "snapshot"));
  const size_t length = EncodeSnapshotId(id).size();
  if (length > kMaxIdLength) {
    return absl::InvalidArgumentError(absl::StrCat("the snapshot id ", EncodeSnapshotId(id),
                                                   " would be ", length, " bytes, more than ",
                                                   kMaxIdLength));
  }
  return absl::OkStatus();
}

std::string EncodeSnapshotId(const SnapshotId& id) {
  return absl::StrCat(EncodeVolumeId(id.image), "@", id.snapshot);
}

absl::StatusOr<SnapshotId> DecodeSnapshotId(std::string_view snapshot_id) {
  RETURN_IF_ERROR(CheckNotJunk(snapshot_id, "snapshot_id"));
  const size_t at = snapshot_id.rfind('@');
  if (at == std::string_view::npos) return NotFound("snapshot", snapshot_id);
  std::optional<ImageId> image = Parse(snapshot_id.substr(0, at));
  SnapshotId out{image.value_or(ImageId{}), std::string(snapshot_id.substr(at + 1))};
  if (!image || !ValidateSnapshotId(out).ok()) return NotFound("snapshot", snapshot_id);
  return out;
}

std::string ClusterIdFromMonitors(std::string_view monitors) {
  std::vector<std::string> list;
  for (absl::string_view m : absl::StrSplit(AsAbsl(monitors), ',')) {
    m = absl::StripAsciiWhitespace(m);
    if (!m.empty()) list.emplace_back(m);
  }
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
  return absl::StrFormat("mon-%016x", StableHash64(absl::StrJoin(list, ",")));
}

}  // namespace rbdcsi
