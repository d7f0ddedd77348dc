// Loop devices: the kernel boundary of the "loop" mapper (and of the fake `rbd` used in tests).
#ifndef RBDCSI_RBD_LOOP_DEVICE_H_
#define RBDCSI_RBD_LOOP_DEVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/clock.h"

namespace rbdcsi {

struct LoopInfo {
  std::string device;            // "/dev/loop3"
  std::string backing_file;      // as the kernel reports it, without the " (deleted)" suffix
  bool backing_deleted = false;  // the backing file was unlinked while attached
  unsigned major = 0;
  unsigned minor = 0;
  bool read_only = false;
  bool autoclear = false;
  // The kernel's disk sequence number: new with every attach, so that a device number plus
  // this identify one attachment even when the backing path no longer reads as it did (a FUSE
  // file whose daemon died). 0: unknown (kernels before 5.15).
  uint64_t diskseq = 0;
};

// Attaching, detaching and inspecting loop devices. Implementations are thread-safe.
class LoopDevices {
 public:
  virtual ~LoopDevices() = default;

  // Attaches a free loop device to `backing_file` and returns its path ("/dev/loopN"). The
  // device stays attached after this process exits (no autoclear). NOT_FOUND when the backing
  // file does not exist; UNAVAILABLE when no free device could be claimed after retries.
  virtual absl::StatusOr<std::string> Attach(const std::string& backing_file, bool read_only) = 0;

  // Detaches `dev` the way krbd unmaps: only when nothing holds it, never lazily.
  // If `expected_backing_file` is not empty and `dev` is attached to another file, `dev` is
  // left alone and the result is OK (what the caller mapped is no longer there), as it is for a
  // device that is not attached or does not exist. When a mount, stacked device or other
  // process holds `dev`, returns a status for which IsBusy() is true and `dev` stays attached.
  virtual absl::Status Detach(const std::string& dev, const std::string& expected_backing_file) = 0;

  // Every attached loop device of the machine (from sysfs), sorted by device number.
  virtual absl::StatusOr<std::vector<LoopInfo>> List() = 0;

  // List() narrowed to the devices whose backing file (as the kernel reports it) `want`
  // accepts; only those have their other attributes read.
  virtual absl::StatusOr<std::vector<LoopInfo>> ListWhere(
      const std::function<bool(std::string_view backing_file)>& want) = 0;

  // What List() would say about `dev` alone, at the cost of one device rather than all:
  // NOT_FOUND when `dev` is not an attached loop device.
  virtual absl::StatusOr<LoopInfo> Get(const std::string& dev) = 0;

  // Makes `dev` pick up the current size of its backing file (LOOP_SET_CAPACITY).
  // NOT_FOUND when `dev` is not attached.
  virtual absl::Status SetCapacity(const std::string& dev) = 0;

  // True when no mount, stacked device or other exclusive opener holds `dev` (an exclusive
  // open succeeds). Plain open file descriptors do not show here; Detach() notices them.
  // NOT_FOUND if `dev` does not exist.
  virtual absl::StatusOr<bool> IsFree(const std::string& dev) = 0;
};

struct RealLoopDevicesOptions {
  std::string dev_dir = "/dev";
  std::string sysfs_dir = "/sys";
  // Used to wait for device nodes udev/devtmpfs has not created yet; null: the real clock.
  std::shared_ptr<Clock> clock;
};

// The real implementation (ioctls on /dev/loop-control and /dev/loopN). Needs CAP_SYS_ADMIN.
std::unique_ptr<LoopDevices> NewRealLoopDevices(RealLoopDevicesOptions options = {});

// Parses the content of a sysfs `backing_file` attribute: strips the trailing newline and the
// " (deleted)" suffix the kernel adds for unlinked files, setting `deleted`.
std::string ParseBackingFile(std::string_view content, bool* deleted);

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_LOOP_DEVICE_H_
