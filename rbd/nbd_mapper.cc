#include "rbd/nbd_mapper.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

// What `rbd device list -t nbd` reads for every device, for this one: the device's daemon
// (/sys/block/nbdN/pid) and its command line, "rbd-nbd map POOL/[NAMESPACE/]IMAGE ...", as
// `rbd device map -t nbd` starts it. No daemon, another image or a snapshot: not this mapping.
bool NbdMapper::StillServes(const MappedDevice& device) const {
  const pid_t daemon = DaemonOf(device.path);
  if (daemon <= 0) return false;
  absl::StatusOr<std::string> cmdline =
      ReadSmallFile(absl::StrCat(options_.proc_dir, "/", daemon, "/cmdline"));
  if (!cmdline.ok()) return false;  // exited meanwhile
  const std::vector<std::string> argv = absl::StrSplit(*cmdline, '\0', absl::SkipEmpty());
  if (argv.empty() || !(argv[0] == "rbd-nbd" || absl::EndsWith(argv[0], "/rbd-nbd"))) {
    return false;
  }
  const auto command = std::find_if(
      argv.begin(), argv.end(), [](const std::string& a) { return a == "map" || a == "attach"; });
  return command != argv.end() &&
         std::find(command + 1, argv.end(), device.image.ToString()) != argv.end();
}

absl::Status NbdMapper::Unmap(const MappedDevice& device) {
  const std::string what = absl::StrCat("unmapping ", device.path);
  if ((!device.image.pool.empty() || !device.image.image.empty()) && !StillServes(device)) {
    return absl::OkStatus();
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
