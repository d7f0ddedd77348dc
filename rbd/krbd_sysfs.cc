#include "rbd/krbd_sysfs.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

// One attribute, without its trailing newline; nullopt when it does not exist.
absl::StatusOr<std::optional<std::string>> Attribute(const std::string& dir, const char* name) {
  absl::StatusOr<std::string> text = ReadSmallFile(absl::StrCat(dir, "/", name));
  if (absl::IsNotFound(text.status())) return std::nullopt;
  if (!text.ok()) return text.status();
  return std::string(absl::StripTrailingAsciiWhitespace(*text));
}

absl::StatusOr<unsigned> Number(const std::string& dir, const char* name,
                                const std::optional<std::string>& text) {
  unsigned value = 0;
  if (!text.has_value() || !absl::SimpleAtoi(*text, &value)) {
    return absl::InternalError(
        absl::StrCat(dir, "/", name, text.has_value() ? " is not a number" : " is missing"));
  }
  return value;
}

// NOT_FOUND when the device went away meanwhile.
absl::StatusOr<KrbdSysfsDevice> ReadDevice(const std::string& devices_dir, std::string id) {
  const std::string dir = absl::StrCat(devices_dir, "/", id);
  KrbdSysfsDevice device;
  device.id = std::move(id);
  ASSIGN_OR_RETURN(std::optional<std::string> pool, Attribute(dir, "pool"));
  ASSIGN_OR_RETURN(std::optional<std::string> name, Attribute(dir, "name"));
  ASSIGN_OR_RETURN(std::optional<std::string> major, Attribute(dir, "major"));
  if (!pool.has_value() && !name.has_value() && !major.has_value()) {
    return absl::NotFoundError(absl::StrCat(dir, " is gone"));
  }
  if (!pool.has_value() || !name.has_value()) {
    return absl::InternalError(absl::StrCat(dir, " lacks pool or name"));
  }
  device.pool = *pool;
  device.name = *name;
  ASSIGN_OR_RETURN(device.number.major, Number(dir, "major", major));
  // Without single-major numbering there is no "minor" file and each device has minor 0.
  ASSIGN_OR_RETURN(std::optional<std::string> minor, Attribute(dir, "minor"));
  if (minor.has_value()) {
    ASSIGN_OR_RETURN(device.number.minor, Number(dir, "minor", minor));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> nspace, Attribute(dir, "pool_ns"));
  ASSIGN_OR_RETURN(std::optional<std::string> snap, Attribute(dir, "current_snap"));
  ASSIGN_OR_RETURN(std::optional<std::string> client, Attribute(dir, "client_addr"));
  device.nspace = nspace.value_or("");
  device.snap = snap.value_or("-");
  device.client_addr = client.value_or("");
  return device;
}

}  // namespace

absl::StatusOr<std::vector<KrbdSysfsDevice>> ReadKrbdSysfs(const std::string& devices_dir) {
  std::vector<KrbdSysfsDevice> out;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(devices_dir.c_str()), closedir);
  if (!dir) {
    if (errno == ENOENT) return out;
    return ErrnoToStatus(errno, absl::StrCat("listing ", devices_dir));
  }
  std::vector<std::string> ids;
  while (const dirent* entry = readdir(dir.get())) {
    unsigned ignored = 0;
    if (absl::SimpleAtoi(entry->d_name, &ignored)) ids.emplace_back(entry->d_name);
  }
  std::sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  for (std::string& id : ids) {
    absl::StatusOr<KrbdSysfsDevice> device = ReadDevice(devices_dir, std::move(id));
    if (absl::IsNotFound(device.status())) continue;
    if (!device.ok()) return device.status();
    out.push_back(*std::move(device));
  }
  return out;
}

absl::StatusOr<std::optional<KrbdSysfsDevice>> ReadKrbdSysfsDevice(const std::string& devices_dir,
                                                                   const std::string& id) {
  unsigned ignored = 0;
  if (!absl::SimpleAtoi(id, &ignored)) return std::nullopt;  // never a path outside devices_dir
  absl::StatusOr<KrbdSysfsDevice> device = ReadDevice(devices_dir, id);
  if (absl::IsNotFound(device.status())) return std::nullopt;
  if (!device.ok()) return device.status();
  return *std::move(device);
}

}  // namespace rbdcsi
