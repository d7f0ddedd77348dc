#include "cmd/holders.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "cmd/holders_format.h"
#include "driver/holders_message.h"
#include "holders/holders.h"
#include "mounter/mounter.h"

namespace rbdcsi {
namespace {

std::optional<DeviceNumber> ParseMajorMinor(std::string_view target) {
  const std::vector<absl::string_view> parts = absl::StrSplit(AsAbsl(target), ':');
  DeviceNumber d;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &d.major) ||
      !absl::SimpleAtoi(parts[1], &d.minor)) {
    return std::nullopt;
  }
  return d;
}

// "/dev/NAME" from /sys/dev/block/M:N/uevent's DEVNAME; NOT_FOUND if no such block device.
absl::StatusOr<std::string> DeviceNameOf(DeviceNumber d) {
  const std::string uevent = absl::StrCat("/sys/dev/block/", d.major, ":", d.minor, "/uevent");
  absl::StatusOr<std::string> text = ReadWholeFile(uevent);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(absl::StrCat("no block device ", d.major, ":", d.minor));
    }
    return text.status();
  }
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::ConsumePrefix(&line, "DEVNAME=")) return absl::StrCat("/dev/", line);
  }
  return std::string();
}

void AddOwnMount(const std::vector<MountInfo>& table, HoldersTarget& target) {
  for (const MountInfo& m : table) {
    if (m.major != target.number.major || m.minor != target.number.minor) continue;
    if (auto group = m.shared_peer_group()) {
      target.peer_group = *group;
      return;
    }
  }
}

std::string StripTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

void AddHoldersFlags(CLI::App& app, HoldersFlags& flags) {
  app.add_option("target", flags.target,
                 "Block device (/dev/rbd3), MAJ:MIN (250:0), or a mount point of the device")
      ->required();
  app.add_flag("--json", flags.json, "Print JSON instead of a table");
}

absl::StatusOr<HoldersTarget> ResolveHoldersTarget(std::string_view target,
                                                   const std::vector<MountInfo>& own_table) {
  HoldersTarget resolved;
  if (std::optional<DeviceNumber> d = ParseMajorMinor(target)) {
    resolved.number = *d;
    ASSIGN_OR_RETURN(resolved.device, DeviceNameOf(*d));
    AddOwnMount(own_table, resolved);
    return resolved;
  }
  // A mount point first, from the mount table: no need to touch a filesystem that may hang.
  std::string path = StripTrailingSlashes(std::string(target));
  std::vector<MountInfo> at = MountsAt(own_table, path);
  if (at.empty()) {
    char* real = ::realpath(path.c_str(), nullptr);
    if (real == nullptr) return ErrnoToStatus(errno, absl::StrCat("cannot resolve ", path));
    path = real;
    std::free(real);
    at = MountsAt(own_table, path);
  }
  if (!at.empty()) {
    const MountInfo& top = at.back();
    resolved.number = {top.major, top.minor};
    resolved.mount_id = top.mount_id;
    resolved.peer_group = top.shared_peer_group();
    absl::StatusOr<std::string> name = DeviceNameOf(resolved.number);
    if (!name.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is a mount of ", top.fs_type, ", not of a block device"));
    }
    resolved.device = *name;
    return resolved;
  }
  struct statx st;
  if (::statx(AT_FDCWD, path.c_str(), AT_STATX_DONT_SYNC, STATX_TYPE, &st) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("cannot stat ", path));
  }
  if (!S_ISBLK(st.stx_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        " is neither a block device nor a mount point; give a device, MAJ:MIN or a mount "
        "point"));
  }
  resolved.number = {st.stx_rdev_major, st.stx_rdev_minor};
  resolved.device = std::string(target);
  AddOwnMount(own_table, resolved);
  return resolved;
}

int RunHolders(const HoldersFlags& flags, ProcFs& procfs, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::vector<MountInfo>> table = ReadMountInfo("/proc/self/mountinfo");
  if (!table.ok()) {
    err << "rbdcsi holders: " << table.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<HoldersTarget> target = ResolveHoldersTarget(flags.target, *table);
  if (!target.ok()) {
    err << "rbdcsi holders: " << target.status().message() << "\n";
    return 2;
  }
  ScanOptions options;
  options.host_peer_group = target->peer_group;
  options.host_mount_id = target->mount_id;
  HolderScanner scanner(procfs);
  absl::StatusOr<HolderReport> report =
      scanner.Scan(target->number.major, target->number.minor, options);
  if (!report.ok()) {
    err << "rbdcsi holders: " << report.status().message() << "\n";
    return 2;
  }
  const std::string name = target->device.empty()
                               ? absl::StrCat(target->number.major, ":", target->number.minor)
                               : target->device;
  if (flags.json) {
    out << HoldersToJson(target->device, *report).dump(2) << "\n";
  } else if (report->held()) {
    out << FormatHoldersTable(*report) << FormatScanSummary(*report) << "\n";
  } else {
    out << name << " (" << target->number.major << ":" << target->number.minor
        << ") is not held by anything\n"
        << FormatScanSummary(*report) << "\n";
  }
  return report->held() ? 1 : 0;
}

int RunHolders(const HoldersFlags& flags) {
  std::unique_ptr<ProcFs> procfs = NewRealProcFs();
  return RunHolders(flags, *procfs, std::cout, std::cerr);
}

}  // namespace rbdcsi
