#include "mounter/mountinfo.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/fd.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

// Fields before the optional ones: id, parent, major:minor, root, mount point, options.
constexpr size_t kFixedFields = 6;
// Fields after the " - " separator: fs type, source, super options.
constexpr size_t kTrailingFields = 3;

// absl::SimpleAtoi accepts signs and surrounding blanks; mountinfo numbers are plain digits.
template <typename T>
bool ParseDecimal(absl::string_view s, T* out) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(s, out);
}

absl::Status Malformed(absl::string_view line, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed mountinfo line (", why, "): \"", line, "\""));
}

std::optional<int> TaggedNumber(const std::vector<std::string>& fields, absl::string_view tag) {
  for (const std::string& field : fields) {
    absl::string_view value = field;
    int n = 0;
    if (absl::ConsumePrefix(&value, tag) && absl::ConsumePrefix(&value, ":") &&
        ParseDecimal(value, &n)) {
      return n;
    }
  }
  return std::nullopt;
}

std::string_view AsStd(absl::string_view s) { return {s.data(), s.size()}; }

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

}  // namespace

std::optional<int> MountInfo::shared_peer_group() const {
  return TaggedNumber(optional_fields, "shared");
}

std::optional<int> MountInfo::master_peer_group() const {
  return TaggedNumber(optional_fields, "master");
}

std::optional<int> MountInfo::propagate_from_peer_group() const {
  return TaggedNumber(optional_fields, "propagate_from");
}

bool MountInfo::is_unbindable() const {
  for (const std::string& field : optional_fields) {
    if (field == "unbindable") return true;
  }
  return false;
}

std::string UnescapeMountField(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    // The first digit is at most 3 so that the value fits in a byte.
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
        IsOctal(s[i + 2]) && IsOctal(s[i + 3])) {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

absl::StatusOr<MountInfo> ParseMountInfoLine(std::string_view std_line) {
  const absl::string_view line = AsAbsl(std_line);
  // The kernel escapes newlines in fields, so a raw one means several lines were passed.
  if (absl::StrContains(line, '\n')) return Malformed(line, "embedded newline");
  // Split on single spaces and keep empty fields: an empty source prints as two spaces.
  const std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
  size_t separator = kFixedFields;
  while (separator < fields.size() && fields[separator] != "-") ++separator;
  if (separator >= fields.size()) {
    if (fields.size() < kFixedFields) return Malformed(line, "too few fields");
    return Malformed(line, "no \" - \" separator");
  }
  if (fields.size() - separator - 1 != kTrailingFields) {
    return Malformed(line, absl::StrCat("expected ", kTrailingFields,
                                        " fields after the \" - \" separator, found ",
                                        fields.size() - separator - 1));
  }

  MountInfo info;
  if (!ParseDecimal(fields[0], &info.mount_id)) return Malformed(line, "bad mount id");
  if (!ParseDecimal(fields[1], &info.parent_id)) return Malformed(line, "bad parent id");
  const std::pair<absl::string_view, absl::string_view> dev =
      absl::StrSplit(fields[2], absl::MaxSplits(':', 1));
  if (!ParseDecimal(dev.first, &info.major) || !ParseDecimal(dev.second, &info.minor)) {
    return Malformed(line, "bad major:minor");
  }
  if (fields[3].empty() || fields[4].empty()) return Malformed(line, "empty root or mount point");
  info.root = UnescapeMountField(AsStd(fields[3]));
  info.mount_point = UnescapeMountField(AsStd(fields[4]));
  info.mount_options = std::string(fields[5]);
  for (size_t i = kFixedFields; i < separator; ++i) {
    if (fields[i].empty()) return Malformed(line, "empty optional field");
    info.optional_fields.emplace_back(fields[i]);
  }
  info.fs_type = UnescapeMountField(AsStd(fields[separator + 1]));
  info.source = UnescapeMountField(AsStd(fields[separator + 2]));
  info.super_options = std::string(fields[separator + 3]);
  if (info.fs_type.empty()) return Malformed(line, "empty filesystem type");
  return info;
}

absl::StatusOr<std::vector<MountInfo>> ParseMountInfo(std::string_view text) {
  std::vector<MountInfo> mounts;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(AsAbsl(text), '\n')) {
    ++line_number;
    if (line.empty()) continue;
    absl::StatusOr<MountInfo> info = ParseMountInfoLine(AsStd(line));
    if (!info.ok()) return Annotate(info.status(), absl::StrCat("line ", line_number));
    mounts.push_back(*std::move(info));
  }
  return mounts;
}

absl::StatusOr<std::vector<MountInfo>> ReadMountInfo(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadWholeFile(path));
  absl::StatusOr<std::vector<MountInfo>> mounts = ParseMountInfo(text);
  if (!mounts.ok()) return Annotate(mounts.status(), path);
  return mounts;
}

Propagation PropagationOf(const MountInfo& mount) {
  // The kernel clears shared and slave state when it makes a mount unbindable.
  if (mount.is_unbindable()) return Propagation::kUnbindable;
  const bool shared = mount.shared_peer_group().has_value();
  const bool slave = mount.master_peer_group().has_value();
  if (shared && slave) return Propagation::kSharedAndSlave;
  if (shared) return Propagation::kShared;
  if (slave) return Propagation::kSlave;
  return Propagation::kPrivate;
}

std::string_view PropagationName(Propagation propagation) {
  switch (propagation) {
    case Propagation::kPrivate:
      return "private";
    case Propagation::kShared:
      return "shared";
    case Propagation::kSlave:
      return "slave";
    case Propagation::kSharedAndSlave:
      return "shared+slave";
    case Propagation::kUnbindable:
      return "unbindable";
  }
  return "unknown";
}

}  // namespace rbdcsi
