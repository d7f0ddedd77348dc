#include "rbd/nbd_mapper.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

KrbdMapperOptions CliOptions(const NbdMapperOptions& options) {
  KrbdMapperOptions cli;
  cli.rbd_program = options.rbd_program;
  cli.key_dir = options.key_dir;
  cli.timeout = options.timeout;
  cli.device_type = "nbd";
  return cli;
}

// The kernel refuses an exclusive open while the device is mounted (in any namespace) or
// claimed by a stacked device; rbd-nbd's own descriptor is not exclusive and does not count.
absl::Status ProbeExclusive(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return absl::OkStatus();
  }
  if (errno == EBUSY) {
    return BusyError(absl::StrCat(path, " is mounted or claimed by another device"));
  }
  if (errno == ENOENT || errno == ENXIO) return absl::OkStatus();  // gone: nothing to protect
  return ErrnoToStatus(errno, absl::StrCat("opening ", path, " exclusively"));
}

}  // namespace

NbdMapper::NbdMapper(CommandRunner* runner, NbdMapperOptions options)
    : options_(std::move(options)), cli_(runner, CliOptions(options_)) {
  if (!options_.probe_exclusive) options_.probe_exclusive = ProbeExclusive;
}

absl::StatusOr<MappedDevice> NbdMapper::Map(const MapOptions& options) { return cli_.Map(options); }

pid_t NbdMapper::DaemonOf(const std::string& device) const {
  if (!absl::StartsWith(device, "/dev/")) return 0;
  absl::StatusOr<std::string> text =
      ReadSmallFile(absl::StrCat(options_.sysfs_block, "/", device.substr(5), "/pid"));
  pid_t pid = 0;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid)) return 0;
  return pid;
}

std::vector<pid_t> NbdMapper::Servers(const MappedDevice& device) {
  const pid_t daemon = DaemonOf(device.path);
  if (daemon <= 0) return {};
  return {daemon};
}

std::string NbdMapper::WhyGone(const MappedDevice& device) {
  const pid_t daemon = DaemonOf(device.path);
  if (daemon <= 0) {
    return absl::StrCat("no rbd-nbd daemon serves ", device.path,
                        " any more (it exited or was killed: the volume's I/O fails; unstage and "
                        "stage it again)");
  }
  // "PID (COMM) STATE ...": a zombie no longer serves anything either.
  absl::StatusOr<std::string> stat =
      ReadSmallFile(absl::StrCat(options_.proc_dir, "/", daemon, "/stat"));
  if (stat.ok() && absl::StrContains(*stat, " (rbd-nbd) ") && !absl::StrContains(*stat, ") Z ") &&
      !absl::StrContains(*stat, ") X ")) {
    return "";
  }
  return absl::StrCat("the rbd-nbd daemon (pid ", daemon, ") serving ", device.path,
                      " is gone (the volume's I/O fails; unstage and stage it again)");
}

absl::Status NbdMapper::Unmap(const MappedDevice& device) {
  const std::string what = absl::StrCat("unmapping ", device.path);
  if (!device.image.pool.empty() || !device.image.image.empty()) {
    ASSIGN_OR_RETURN(const std::vector<MappedDevice> mapped, List());
    bool still_ours = false;
    for (const MappedDevice& m : mapped) {
      still_ours |= m.path == device.path && m.image == device.image;
    }
    if (!still_ours) return absl::OkStatus();
  }
  // rbd-nbd cannot refuse: check before handing it the device.
  absl::Status claimed = options_.probe_exclusive(device.path);
  if (!claimed.ok()) {
    return IsBusy(claimed) ? BusyError(absl::StrCat(what, ": ", claimed.message(),
                                                    "; rbd-nbd would pull it out from under "
                                                    "its users, so it stays mapped"))
                           : Annotate(claimed, what);
  }
  if (options_.check_unused) {
    absl::Status unused = options_.check_unused(device, DaemonOf(device.path));
    if (!unused.ok()) return Annotate(unused, what);
  }
  return cli_.Unmap(MappedDevice{device.path, device.major, device.minor, {}});
}

absl::StatusOr<std::vector<MappedDevice>> NbdMapper::List() { return cli_.List(); }

absl::Status NbdMapper::RefreshCapacity(const MappedDevice& /*device*/) { return absl::OkStatus(); }

}  // namespace rbdcsi
