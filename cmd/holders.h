// `rbdcsi holders TARGET [--json]`: who keeps a block device busy, in every mount namespace.
#ifndef RBDCSI_CMD_HOLDERS_H_
#define RBDCSI_CMD_HOLDERS_H_

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "holders/procfs.h"
#include "mounter/mountinfo.h"

namespace rbdcsi {

struct HoldersFlags {
  std::string target;  // A device path, MAJ:MIN, or a mount point in this mount namespace.
  bool json = false;
};

// Registers the `holders` arguments on `app`.
void AddHoldersFlags(CLI::App& app, HoldersFlags& flags);

// What a TARGET names.
struct HoldersTarget {
  std::string device;  // "/dev/loop3", or "" when sysfs does not name it.
  DeviceNumber number;
  std::optional<int> peer_group;  // Of the device's mount in this namespace, if shared.
  std::optional<int> mount_id;    // That mount (for a mount point target).
};

// Resolves TARGET against this namespace's mount table `own_table`: "MAJ:MIN", a block device
// node, or a mount point (its topmost mount). INVALID_ARGUMENT for a path that is neither a
// block device nor a mount point, NOT_FOUND for a path or device number that does not exist.
absl::StatusOr<HoldersTarget> ResolveHoldersTarget(std::string_view target,
                                                   const std::vector<MountInfo>& own_table);

// Scans and prints the table (or JSON) to `out`, errors to `err`. Returns the exit code: 0 when
// nothing holds the device, 1 when something does, 2 on error.
int RunHolders(const HoldersFlags& flags, ProcFs& procfs, std::ostream& out, std::ostream& err);

// The same with the real /proc, stdout and stderr.
int RunHolders(const HoldersFlags& flags);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_HOLDERS_H_
