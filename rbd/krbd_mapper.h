// The "krbd" mapper: `rbd device map/unmap/list` of the Ceph CLI (the kernel rbd driver).
#ifndef RBDCSI_RBD_KRBD_MAPPER_H_
#define RBDCSI_RBD_KRBD_MAPPER_H_

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/command.h"
#include "base/device_number.h"
#include "base/file_util.h"  // StatBlockDevice
#include "rbd/mapper.h"

namespace rbdcsi {

// One entry of `rbd device list --format json`.
struct RbdDeviceEntry {
  std::string id;
  std::string pool;
  std::string nspace;  // "namespace"; empty for the default namespace
  std::string name;
  std::string snap;  // "-" for the image head
  std::string device;
};

// Parses `rbd device list --format json` output: an array of objects (Nautilus and later) or
// the older object keyed by id (`rbd showmapped --format json`). Empty output is an empty list.
// INTERNAL for anything else.
absl::StatusOr<std::vector<RbdDeviceEntry>> ParseRbdDeviceList(std::string_view json);

// Parses `rbd status --format json`: the image's watchers as "client.ID at ADDRESS". INTERNAL
// for output that is not such an object.
absl::StatusOr<std::vector<std::string>> ParseRbdWatchers(std::string_view json);

// Turns a command's raw stderr/stdout into one readable line for an error message: trimmed,
// lines joined with "; ", control and non-ASCII bytes replaced by '?', at most ~1000 chars.
std::string DecodeCommandOutput(std::string_view bytes);

struct KrbdMapperOptions {
  // The rbd CLI; looked up in PATH unless it contains a '/'.
  std::string rbd_program = "rbd";
  // Where per-call key files live: each call creates a private 0700 directory below it holding
  // a 0600 key file, and removes both when the call returns. Should be a tmpfs. Created (0700)
  // if missing.
  std::string key_dir = "/run/rbdcsi/keys";
  // Bounds every rbd call; a call past it is killed (DEADLINE_EXCEEDED).
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};
  // Finds the major:minor of a device path; null means StatBlockDevice. Tests replace it.
  std::function<absl::StatusOr<DeviceNumber>(const std::string& path)> stat_device;
  // The kernel's list of its rbd devices. While it exists (the rbd module is loaded) List()
  // reads it and runs no rbd command; without it nothing of krbd's can be mapped, and List()
  // asks `rbd device list` (which answers [] then, or what a test double emulates).
  std::string sysfs_devices = "/sys/bus/rbd/devices";
  // Whether a udev daemon runs on this node; null means UdevRunning(). Without udev, `rbd device
  // map/unmap` would wait forever for udev's events, so they get `-o noudev`.
  std::function<bool()> udev_running;
  // "" for the kernel client; "nbd" runs `rbd device ... -t nbd` (rbd-nbd, which needs no udev
  // and has no sysfs record of its images: List() asks rbd).
  std::string device_type;
};

// True when udevd's control socket exists (/run/udev/control), as libudev decides it.
bool UdevRunning();

// Maps RBD images with the kernel client by running the rbd CLI (argv only, never a shell). The
// cephx key reaches rbd only through --keyfile. Thread-safe.
class KrbdMapper : public Mapper {
 public:
  // `runner` must outlive the mapper.
  explicit KrbdMapper(CommandRunner* runner, KrbdMapperOptions options = {});

  std::string_view Name() const override { return "krbd"; }
  MapperTraits Traits() const override {
    return {{"monitors"},
            {"userID", "userKey"},
            /*unmap_refuses_busy=*/true,
            /*ceph_images=*/true};
  }

  // `rbd device map POOL/IMAGE --id USER -m MONITORS --keyfile FILE [--read-only]
  // [-o noudev,exclusive]`. For a single writer (MapOptions::single_writer) the kernel client
  // first checks with `rbd status` that no other client watches the image (FAILED_PRECONDITION
  // naming the watchers), then maps with `exclusive`: it takes the image's exclusive lock and
  // keeps it, so a later exclusive map elsewhere fails (FAILED_PRECONDITION too).
  // A node that failed while holding the lock keeps its watcher until it is fenced: README.
  // NOT_FOUND when rbd reports ENOENT (no such image or pool), UNAVAILABLE on a connection
  // timeout, INVALID_ARGUMENT for a malformed spec, user, monitor list or a missing key,
  // FAILED_PRECONDITION when the rbd program is not installed, DEADLINE_EXCEEDED when rbd did
  // not finish in time (the image may still get mapped: consult List()), INTERNAL otherwise.
  absl::StatusOr<MappedDevice> Map(const MapOptions& options) override;
  // `rbd device unmap [-o noudev] DEVICE`. When `device.image` is set, the device is first
  // checked and left alone (OK) unless it still maps that image (device names are reused): in
  // sysfs, that one device only; without sysfs, through `rbd device list`.
  // rbd's "not mapped" answers are OK; EBUSY is IsBusy() with rbd's own words.
  absl::Status Unmap(const MappedDevice& device) override;
  // The mapped image heads (in any RADOS namespace; snapshots are left out: Map never maps one),
  // from sysfs (see KrbdMapperOptions::sysfs_devices) or else `rbd device list --format json`.
  // major:minor are 0:0 for a listed device node that cannot be examined.
  absl::StatusOr<std::vector<MappedDevice>> List() override;
  // The kernel client follows image resizes by itself: OK.
  absl::Status RefreshCapacity(const MappedDevice& device) override;

 private:
  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& args);
  // {"-t", TYPE} for another device type, else {"-o", "noudev[,exclusive]"} as needed.
  std::vector<std::string> TypeOptions(bool exclusive = false) const;
  // FAILED_PRECONDITION naming the watchers when any client watches the image.
  absl::Status CheckNoWatchers(const MapOptions& options, const std::string& key_file);
  absl::StatusOr<std::vector<MappedDevice>> ListFromCli();
  // Whether `device.path` is still the head of `device.image` (see Unmap).
  absl::StatusOr<bool> StillMaps(const MappedDevice& device);

  CommandRunner* const runner_;
  const KrbdMapperOptions options_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_KRBD_MAPPER_H_
