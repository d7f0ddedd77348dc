// The "nbd" mapper: images served to the kernel's nbd driver by an rbd-nbd daemon
// (`rbd device map -t nbd`).
#ifndef RBDCSI_RBD_NBD_MAPPER_H_
#define RBDCSI_RBD_NBD_MAPPER_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/command.h"
#include "rbd/krbd_mapper.h"
#include "rbd/mapper.h"

namespace rbdcsi {

struct NbdMapperOptions {
  std::string rbd_program = "rbd";
  std::string key_dir = "/run/rbdcsi/keys";  // as KrbdMapperOptions::key_dir
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};
  // Where the nbd driver shows the serving daemon: /sys/block/nbdN/pid.
  std::string sysfs_block = "/sys/block";
  // Where the daemon's process shows: /proc/PID/stat and /proc/PID/cmdline.
  std::string proc_dir = "/proc";
  // OK when nothing but `daemon` (the device's own rbd-nbd; 0 if unknown) uses the device, else a
  // status for which IsBusy() is true naming the holders. Null: only the kernel's exclusive-open
  // check below runs. The server wires the holder scan in here (rbd/ does not scan processes).
  std::function<absl::Status(const MappedDevice& device, pid_t daemon)> check_unused;
  // Exclusive-open probe of a device node: IsBusy() while the kernel has it claimed (mounted in
  // any mount namespace, stacked under another device). Null means the real open(O_EXCL).
  std::function<absl::Status(const std::string& path)> probe_exclusive;
};

// rbd-nbd's unmap does not refuse a device that is still mounted somewhere: it disconnects it
// and the mounted filesystem fails with I/O errors. So Unmap() checks first, and refuses while
// anything (other than the device's own daemon) holds it. Thread-safe.
class NbdMapper : public Mapper {
 public:
  // `runner` must outlive the mapper.
  NbdMapper(CommandRunner* runner, NbdMapperOptions options);

  std::string_view Name() const override { return "nbd"; }
  MapperTraits Traits() const override {
    return {{"monitors"},
            {"userID", "userKey"},
            /*unmap_refuses_busy=*/false,
            /*ceph_images=*/true};
  }

  // `rbd device map -t nbd ...`: as KrbdMapper::Map, the device is /dev/nbdN.
  absl::StatusOr<MappedDevice> Map(const MapOptions& options) override;
  // Refuses (IsBusy()) while the kernel has the device claimed or check_unused finds holders;
  // then `rbd device unmap -t nbd DEVICE`. When `device.image` is set, a device that no longer
  // serves that image (its daemon's command line says another, or no daemon runs) is left alone
  // (OK). Lists nothing: only this device's sysfs pid and its daemon's /proc entry are read.
  absl::Status Unmap(const MappedDevice& device) override;
  // The devices an rbd-nbd daemon serves an image head on, as `rbd device list -t nbd` finds
  // them but without running it (5 s per call in an emulated guest): every /sys/block/nbdN whose
  // pid file names a running rbd-nbd, and the image its command line names. A device whose
  // daemon died is not listed (its I/O fails; the volume's condition turns abnormal).
  absl::StatusOr<std::vector<MappedDevice>> List() override;
  // rbd-nbd follows image resizes by itself: OK.
  absl::Status RefreshCapacity(const MappedDevice& device) override;

  // The device's rbd-nbd daemon, when one runs.
  std::vector<pid_t> Servers(const MappedDevice& device) override;

  // Names a dead (or disconnected) rbd-nbd daemon: the device's I/O fails from then on.
  std::string WhyGone(const MappedDevice& device) override;

  // The pid of the rbd-nbd daemon serving `device` (/sys/block/nbdN/pid), 0 when none runs.
  pid_t DaemonOf(const std::string& device) const;

 private:
  // The image the rbd-nbd daemon `daemon` serves, from its command line; nullopt when `daemon`
  // is not (or no longer) an rbd-nbd serving an image head.
  std::optional<ImageSpec> ServedBy(pid_t daemon) const;
  // True when `device`'s running rbd-nbd daemon serves `device.image`.
  bool StillServes(const MappedDevice& device) const;

  NbdMapperOptions options_;
  KrbdMapper cli_;  // the rbd CLI with -t nbd
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_NBD_MAPPER_H_
