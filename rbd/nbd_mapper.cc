#include "rbd/nbd_mapper.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <system_error>
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

bool IsCommand(const std::string& word) { return word == "map" || word == "attach"; }

// Where the image spec stands in an rbd-nbd command line. `rbd device map -t nbd` starts the
// daemon as "rbd-nbd [--OPTION VALUE]... map POOL/[NAMESPACE/]IMAGE [FLAGS]" (the global
// options, each with its value, first), so the command is the first word that is neither an
// option nor an option's value. Should a flag without a value stand before it, the first
// "map"/"attach" followed by a word that is neither an option nor a command is taken instead.
// 0 when there is none.
size_t SpecIndex(const std::vector<std::string>& argv) {
  size_t i = 1;
  while (i < argv.size() && absl::StartsWith(argv[i], "-")) {
    i += absl::StrContains(argv[i], '=') ? 1 : 2;  // --option=value, or --option value
  }
  if (i + 1 < argv.size() && IsCommand(argv[i]) && !absl::StartsWith(argv[i + 1], "-")) {
    return i + 1;
  }
  for (size_t j = 1; j + 1 < argv.size(); ++j) {
    if (IsCommand(argv[j]) && !absl::StartsWith(argv[j + 1], "-") && !IsCommand(argv[j + 1])) {
      return j + 1;
    }
  }
  return 0;
}

// The image an rbd-nbd command line serves (see SpecIndex); nullopt for another program, no
// map command, or a snapshot (this plugin maps image heads only).
std::optional<ImageSpec> ServedImage(const std::vector<std::string>& argv) {
  if (argv.empty() || !(argv[0] == "rbd-nbd" || absl::EndsWith(argv[0], "/rbd-nbd"))) {
    return std::nullopt;
  }
  const size_t at = SpecIndex(argv);
  if (at == 0) return std::nullopt;
  const std::string& spec = argv[at];
  if (spec.empty() || absl::StrContains(spec, '@')) return std::nullopt;
  const std::vector<std::string> parts = absl::StrSplit(spec, '/');
  for (const std::string& part : parts) {
    if (part.empty()) return std::nullopt;
  }
  switch (parts.size()) {
    case 1:
      return ImageSpec{"rbd", parts[0]};  // rbd's default pool
    case 2:
      return ImageSpec{parts[0], parts[1]};
    case 3:
      return ImageSpec{parts[0], parts[2], parts[1]};
    default:
      return std::nullopt;
  }
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

std::optional<ImageSpec> NbdMapper::ServedBy(pid_t daemon) const {
  if (daemon <= 0) return std::nullopt;
  absl::StatusOr<std::string> cmdline =
      ReadSmallFile(absl::StrCat(options_.proc_dir, "/", daemon, "/cmdline"));
  if (!cmdline.ok()) return std::nullopt;  // exited meanwhile
  return ServedImage(absl::StrSplit(*cmdline, '\0', absl::SkipEmpty()));
}

// What `rbd device list -t nbd` reads for every device, for this one: the device's daemon
// (/sys/block/nbdN/pid) and the image its command line names. No daemon, another image or a
// snapshot: not this mapping.
bool NbdMapper::StillServes(const MappedDevice& device) const {
  const std::optional<ImageSpec> served = ServedBy(DaemonOf(device.path));
  return served.has_value() && *served == device.image;
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

absl::StatusOr<std::vector<MappedDevice>> NbdMapper::List() {
  std::vector<MappedDevice> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.sysfs_block, ec)) {
    const std::string name = entry.path().filename();
    unsigned index = 0;
    if (!absl::StartsWith(name, "nbd") || !absl::SimpleAtoi(name.substr(3), &index)) continue;
    const std::string path = "/dev/" + name;
    const std::optional<ImageSpec> image = ServedBy(DaemonOf(path));
    if (!image.has_value()) continue;  // not connected, or not an rbd-nbd image head
    // "MAJOR:MINOR"; a device that went away meanwhile is left out.
    absl::StatusOr<std::string> dev = ReadSmallFile(entry.path().string() + "/dev");
    if (!dev.ok()) continue;
    const std::vector<std::string> number =
        absl::StrSplit(absl::StripAsciiWhitespace(*dev), ':');
    MappedDevice device{path, 0, 0, *image};
    if (number.size() != 2 || !absl::SimpleAtoi(number[0], &device.major) ||
        !absl::SimpleAtoi(number[1], &device.minor)) {
      return absl::InternalError(
          absl::StrCat(entry.path().string(), "/dev is not MAJOR:MINOR: ", *dev));
    }
    out.push_back(std::move(device));
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return absl::InternalError(
        absl::StrCat("listing ", options_.sysfs_block, ": ", ec.message()));
  }
  std::sort(out.begin(), out.end(), [](const MappedDevice& a, const MappedDevice& b) {
    return a.minor < b.minor;
  });
  return out;
}

absl::Status NbdMapper::RefreshCapacity(const MappedDevice& /*device*/) { return absl::OkStatus(); }

}  // namespace rbdcsi
