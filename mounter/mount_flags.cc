#include "mounter/mount_flags.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/text.h"

namespace rbdcsi {
namespace {

constexpr size_t kMaxFlagBytes = 256;

// What may follow "name=" for an option.
enum class Value {
  kNone,     // a bare flag
  kUint,     // decimal, at most 10 digits
  kSize,     // decimal with an optional k/m/g suffix
  kData,     // ext4 data=
  kErrors,   // ext4 errors=, without panic
  kBarrier,  // ext4 barrier=0|1 (bare "barrier" is a kNone entry)
};

struct Option {
  std::string_view name;
  Value value;
};

// Options of the VFS layer that only restrict or tune a mount; valid for every filesystem.
constexpr Option kVfsOptions[] = {
    {"ro", Value::kNone},          {"rw", Value::kNone},       {"noatime", Value::kNone},
    {"atime", Value::kNone},       {"relatime", Value::kNone}, {"norelatime", Value::kNone},
    {"strictatime", Value::kNone}, {"lazytime", Value::kNone}, {"nolazytime", Value::kNone},
    {"nodiratime", Value::kNone},  {"diratime", Value::kNone}, {"noexec", Value::kNone},
    {"exec", Value::kNone},        {"nosuid", Value::kNone},   {"suid", Value::kNone},
    {"nodev", Value::kNone},       {"dev", Value::kNone},      {"sync", Value::kNone},
    {"async", Value::kNone},       {"dirsync", Value::kNone},  {"iversion", Value::kNone},
    {"noiversion", Value::kNone},
};

constexpr Option kExt4Options[] = {
    {"barrier", Value::kNone},
    {"barrier", Value::kBarrier},
    {"nobarrier", Value::kNone},
    {"discard", Value::kNone},
    {"nodiscard", Value::kNone},
    {"delalloc", Value::kNone},
    {"nodelalloc", Value::kNone},
    {"user_xattr", Value::kNone},
    {"nouser_xattr", Value::kNone},
    {"acl", Value::kNone},
    {"noacl", Value::kNone},
    {"journal_checksum", Value::kNone},
    {"nojournal_checksum", Value::kNone},
    {"journal_async_commit", Value::kNone},
    {"noinit_itable", Value::kNone},
    {"init_itable", Value::kUint},
    {"auto_da_alloc", Value::kNone},
    {"noauto_da_alloc", Value::kNone},
    {"block_validity", Value::kNone},
    {"noblock_validity", Value::kNone},
    {"dioread_lock", Value::kNone},
    {"dioread_nolock", Value::kNone},
    {"quota", Value::kNone},
    {"noquota", Value::kNone},
    {"usrquota", Value::kNone},
    {"grpquota", Value::kNone},
    {"prjquota", Value::kNone},
    {"i_version", Value::kNone},
    {"nombcache", Value::kNone},
    {"grpid", Value::kNone},
    {"nogrpid", Value::kNone},
    {"bsdgroups", Value::kNone},
    {"sysvgroups", Value::kNone},
    {"commit", Value::kUint},
    {"stripe", Value::kUint},
    {"max_batch_time", Value::kUint},
    {"min_batch_time", Value::kUint},
    {"inode_readahead_blks", Value::kUint},
    {"resuid", Value::kUint},
    {"resgid", Value::kUint},
    {"journal_ioprio", Value::kUint},
    {"max_dir_size_kb", Value::kUint},
    {"data", Value::kData},
    {"errors", Value::kErrors},
};

constexpr Option kXfsOptions[] = {
    {"discard", Value::kNone},    {"nodiscard", Value::kNone},   {"noquota", Value::kNone},
    {"uquota", Value::kNone},     {"usrquota", Value::kNone},    {"uqnoenforce", Value::kNone},
    {"gquota", Value::kNone},     {"grpquota", Value::kNone},    {"gqnoenforce", Value::kNone},
    {"pquota", Value::kNone},     {"prjquota", Value::kNone},    {"pqnoenforce", Value::kNone},
    {"qnoenforce", Value::kNone}, {"attr2", Value::kNone},       {"noattr2", Value::kNone},
    {"inode32", Value::kNone},    {"inode64", Value::kNone},     {"largeio", Value::kNone},
    {"nolargeio", Value::kNone},  {"swalloc", Value::kNone},     {"wsync", Value::kNone},
    {"nouuid", Value::kNone},     {"filestreams", Value::kNone}, {"ikeep", Value::kNone},
    {"noikeep", Value::kNone},    {"grpid", Value::kNone},       {"nogrpid", Value::kNone},
    {"bsdgroups", Value::kNone},  {"sysvgroups", Value::kNone},  {"logbufs", Value::kUint},
    {"sunit", Value::kUint},      {"swidth", Value::kUint},      {"logbsize", Value::kSize},
    {"allocsize", Value::kSize},
};

// Flags refused by name, with the reason the error gives.
struct Refusal {
  std::string_view name;
  std::string_view why;
};
constexpr std::string_view kUserspace = "is a userspace-only (fstab/mount helper) option";
constexpr std::string_view kPropagation = "changes mount propagation or the kind of mount";
constexpr std::string_view kStacking = "would stack another device (a loop device) on the volume";
constexpr Refusal kRefused[] = {
    {"user", kUserspace},         {"users", kUserspace},         {"nouser", kUserspace},
    {"owner", kUserspace},        {"group", kUserspace},         {"defaults", kUserspace},
    {"auto", kUserspace},         {"noauto", kUserspace},        {"nofail", kUserspace},
    {"_netdev", kUserspace},      {"helper", kUserspace},        {"comment", kUserspace},
    {"shared", kPropagation},     {"rshared", kPropagation},     {"slave", kPropagation},
    {"rslave", kPropagation},     {"private", kPropagation},     {"rprivate", kPropagation},
    {"unbindable", kPropagation}, {"runbindable", kPropagation}, {"bind", kPropagation},
    {"rbind", kPropagation},      {"move", kPropagation},        {"remount", kPropagation},
    {"loop", kStacking},          {"offset", kStacking},         {"sizelimit", kStacking},
    {"encryption", kStacking},
};

bool AllDigits(std::string_view s, size_t max_digits) {
  return !s.empty() && s.size() <= max_digits &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool ValueFits(Value kind, std::string_view value) {
  switch (kind) {
    case Value::kNone:
      return false;
    case Value::kUint:
      return AllDigits(value, 10);
    case Value::kSize: {
      const char last = value.empty() ? '\0' : absl::ascii_tolower(value.back());
      if (last == 'k' || last == 'm' || last == 'g') value.remove_suffix(1);
      return AllDigits(value, 10);
    }
    case Value::kData:
      return value == "ordered" || value == "writeback" || value == "journal";
    case Value::kErrors:
      return value == "continue" || value == "remount-ro";
    case Value::kBarrier:
      return value == "0" || value == "1";
  }
  return false;
}

absl::Status Refuse(std::string_view flag, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("volume_capability.mount.mount_flags: '", EscapeText(flag), "' ", AsAbsl(why)));
}

template <size_t N>
bool Allowed(const Option (&options)[N], std::string_view name,
             std::optional<std::string_view> value) {
  for (const Option& o : options) {
    if (o.name != name) continue;
    if (!value.has_value() ? o.value == Value::kNone : ValueFits(o.value, *value)) return true;
  }
  return false;
}

absl::Status CheckFlag(std::string_view fs_type, std::string_view flag, bool read_only) {
  if (flag.empty()) return Refuse(flag, "is empty");
  if (flag.size() > kMaxFlagBytes) return Refuse(flag.substr(0, 32), "... is too long");
  for (char c : flag) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return Refuse(flag, "contains whitespace, a control byte, NUL or a non-ASCII byte");
    }
    if (c == ',') return Refuse(flag, "holds several options; pass one option per flag");
  }
  const size_t eq = flag.find('=');
  const std::string_view name = flag.substr(0, eq);
  const std::optional<std::string_view> value =
      eq == std::string_view::npos ? std::nullopt : std::optional(flag.substr(eq + 1));
  if (absl::StartsWithIgnoreCase(AsAbsl(name), "x-")) return Refuse(flag, kUserspace);
  if (absl::StartsWith(AsAbsl(name), "make-")) return Refuse(flag, kPropagation);
  for (const Refusal& r : kRefused) {
    if (r.name == name) return Refuse(flag, r.why);
  }
  if (name == "errors" && value == "panic") {
    return Refuse(flag, "would panic the whole node on a filesystem error");
  }
  if (flag == "rw" && read_only) {
    return Refuse(flag, "contradicts the read-only access mode");
  }
  if (Allowed(kVfsOptions, name, value)) return absl::OkStatus();
  if (fs_type == "ext4" && Allowed(kExt4Options, name, value)) return absl::OkStatus();
  if (fs_type == "xfs" && Allowed(kXfsOptions, name, value)) return absl::OkStatus();
  return Refuse(flag, absl::StrCat("is not an allowed ", AsAbsl(fs_type), " mount option"));
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ApplyMountFlagPolicy(std::string_view fs_type,
                                                              const std::vector<std::string>& flags,
                                                              bool read_only) {
  if (fs_type != "ext4" && fs_type != "xfs") {
    return absl::InvalidArgumentError(absl::StrCat("volume_capability.mount.fs_type '",
                                                   EscapeText(fs_type),
                                                   "' is not supported: use ext4 or xfs"));
  }
  std::vector<std::string> out;
  for (const std::string& flag : flags) {
    RETURN_IF_ERROR(CheckFlag(fs_type, flag, read_only));
    out.push_back(flag);
  }
  if (read_only && std::find(out.begin(), out.end(), "ro") == out.end()) out.push_back("ro");
  return out;
}

}  // namespace rbdcsi
