// The kernel rbd driver's own record of its devices: /sys/bus/rbd/devices/ID/.
#ifndef RBDCSI_RBD_KRBD_SYSFS_H_
#define RBDCSI_RBD_KRBD_SYSFS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/device_number.h"

namespace rbdcsi {

// What the kernel says about one mapped krbd device.
struct KrbdSysfsDevice {
  std::string id;           // the directory name; the device node is /dev/rbd<id>
  std::string pool;         // "pool"
  std::string nspace;       // "pool_ns"; empty for the default namespace (or kernels without it)
  std::string name;         // "name": the image
  std::string snap;         // "current_snap": "-" for the image head
  DeviceNumber number;      // "major", "minor"
  std::string client_addr;  // "client_addr" (kernels >= 5.5; empty before): the watcher's address

  std::string device() const { return "/dev/rbd" + id; }
};

// Reads every device under `devices_dir` (normally /sys/bus/rbd/devices). A missing directory
// means the rbd module is not loaded, hence no devices: an empty list. A device that goes away
// while being read is left out. INTERNAL when an entry lacks pool, name or major (or has a
// non-numeric major/minor), naming the file. Thread-safe.
absl::StatusOr<std::vector<KrbdSysfsDevice>> ReadKrbdSysfs(const std::string& devices_dir);

// Reads the one device `id` under `devices_dir` (e.g. "3" for /dev/rbd3), without looking at
// the others; nullopt when there is no such device. Errors as ReadKrbdSysfs(). Thread-safe.
absl::StatusOr<std::optional<KrbdSysfsDevice>> ReadKrbdSysfsDevice(const std::string& devices_dir,
                                                                   const std::string& id);

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_KRBD_SYSFS_H_
