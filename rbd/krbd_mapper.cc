#include "rbd/krbd_mapper.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "base/text.h"
#include "rbd/key_file.h"
#include "rbd/krbd_sysfs.h"

namespace rbdcsi {
namespace {

constexpr int kEnoent = 2;
constexpr int kEbusy = 16;
constexpr int kEtimedout = 110;
constexpr int kErofs = 30;  // an exclusive map while another client holds the lock

// Whether an error may quote the argument: the cephx user comes from the request's secrets.
enum class Echo { kYes, kNo };

// Arguments that reach rbd's command line: never empty, never an option, no whitespace.
absl::Status ValidateArgument(absl::string_view what, absl::string_view value,
                              absl::string_view forbidden, Echo echo = Echo::kYes) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (value.front() == '-') {
    return absl::InvalidArgumentError(echo == Echo::kYes
                                          ? absl::StrCat(what, " \"", value, "\" starts with '-'")
                                          : absl::StrCat(what, " starts with '-'"));
  }
  for (char c : value) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || forbidden.find(c) != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " contains whitespace, a control character or one of \"", forbidden, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateImage(const ImageSpec& spec) {
  RETURN_IF_ERROR(ValidateArgument("pool name", spec.pool, "/@"));
  if (!spec.rados_namespace.empty()) {
    RETURN_IF_ERROR(ValidateArgument("rados namespace", spec.rados_namespace, "/@"));
  }
  return ValidateArgument("image name", spec.image, "/@");
}

// The errno rbd reports: "... failed: (16) Device or resource busy" on its last such line,
// else its exit status (rbd exits with the positive errno).
std::optional<int> RbdErrno(const CommandResult& result) {
  std::optional<int> found;
  absl::string_view err = result.err;
  for (size_t pos = err.find(": ("); pos != absl::string_view::npos;
       pos = err.find(": (", pos + 1)) {
    absl::string_view rest = err.substr(pos + 3);
    int value = 0;
    if (absl::SimpleAtoi(rest.substr(0, rest.find(')')), &value)) found = value;
  }
  if (!found.has_value() && result.exit_code > 0 && result.exit_code < 128) {
    found = result.exit_code;
  }
  return found;
}

// rbd's own words for an error. Secrets are redacted from the raw bytes, before decoding
// replaces or cuts any of them, in case any tool ever echoes one.
std::string RbdWords(const CommandResult& result, const std::vector<std::string>& secrets = {}) {
  std::string words = DecodeCommandOutput(RedactSecrets(result.err, secrets));
  if (words.empty()) words = DecodeCommandOutput(RedactSecrets(result.out, secrets));
  if (words.empty()) return absl::StrCat("exit status ", result.exit_code);
  return absl::StrCat(words, " (exit status ", result.exit_code, ")");
}

bool SaysNotMapped(const CommandResult& result) {
  const std::string& err = result.err;
  return absl::StrContains(err, "is not a block device") ||
         absl::StrContains(err, "is not an rbd device") ||
         absl::StrContains(err, "not a mapped image or snapshot") ||
         (RbdErrno(result) == kEnoent && absl::StrContains(err, "No such file or directory"));
}

// The device node rbd printed on success: the last stdout line that is a /dev path.
std::optional<std::string> DevicePathOf(absl::string_view out) {
  std::optional<std::string> path;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::StartsWith(line, "/dev/")) path = std::string(line);
  }
  return path;
}

}  // namespace

bool UdevRunning() { return access("/run/udev/control", F_OK) == 0; }

KrbdMapper::KrbdMapper(CommandRunner* runner, KrbdMapperOptions options)
    : runner_(runner), options_([&options] {
        if (!options.stat_device) options.stat_device = StatBlockDevice;
        if (!options.udev_running) options.udev_running = UdevRunning;
        return std::move(options);
      }()) {}

std::vector<std::string> KrbdMapper::TypeOptions(bool exclusive) const {
  if (!options_.device_type.empty()) return {"-t", options_.device_type};
  std::vector<std::string> krbd_options;
  if (!options_.udev_running()) krbd_options.push_back("noudev");
  if (exclusive) krbd_options.push_back("exclusive");
  if (krbd_options.empty()) return {};
  return {"-o", absl::StrJoin(krbd_options, ",")};
}

absl::Status KrbdMapper::CheckNoWatchers(const MapOptions& options, const std::string& key_file) {
  const std::string what = absl::StrCat("checking who uses RBD image ", options.image.ToString());
  ASSIGN_OR_RETURN(const CommandResult result,
                   Run({"status", options.image.ToString(), "--format", "json", "--id",
                        options.user, "-m", options.monitors, "--keyfile", key_file}));
  if (result.exit_code != 0) {
    const std::string words = RbdWords(result, {options.key, options.user});
    if (RbdErrno(result) == kEnoent) {
      return absl::NotFoundError(absl::StrCat(what, ": no such image or pool: ", words));
    }
    return absl::InternalError(absl::StrCat(what, ": ", words));
  }
  ASSIGN_OR_RETURN(const std::vector<std::string> watchers, ParseRbdWatchers(result.out));
  if (watchers.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "RBD image ", options.image.ToString(), " is in use by ", absl::StrJoin(watchers, ", "),
      " and the access mode allows one writer only; unstage it there first (for a failed node, "
      "fence that client: ceph osd blocklist add ADDRESS)"));
}

absl::StatusOr<CommandResult> KrbdMapper::Run(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {options_.rbd_program};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions command_options;
  command_options.timeout = options_.timeout;
  absl::StatusOr<CommandResult> result = runner_->Run(argv, command_options);
  if (absl::IsNotFound(result.status())) {
    // Not NOT_FOUND: callers read that as "no such image".
    return absl::FailedPreconditionError(
        absl::StrCat(result.status().message(), "; is the Ceph client (ceph-common) installed?"));
  }
  return result;
}

namespace {

// Arguments rbd would misread, or that would put the key on its command line.
absl::Status ValidateMapOptions(const MapOptions& options, const std::string& what) {
  RETURN_IF_ERROR(Annotate(ValidateImage(options.image), what));
  RETURN_IF_ERROR(Annotate(ValidateArgument("cephx user", options.user, "", Echo::kNo), what));
  RETURN_IF_ERROR(Annotate(ValidateArgument("monitor list", options.monitors, ""), what));
  if (options.key.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no cephx key"));
  if (options.key.find_first_of(std::string_view("\0\n", 2)) != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the cephx key has a line break"));
  }
  return absl::OkStatus();
}

// What a failed `rbd device map` (non-zero exit) means, in rbd's own words (secrets removed).
absl::Status MapFailure(const CommandResult& result, const MapOptions& options,
                        const std::string& what, bool exclusive) {
  const std::string words = RbdWords(result, {options.key, options.user});
  switch (RbdErrno(result).value_or(0)) {
    case kEnoent:
      return absl::NotFoundError(absl::StrCat(what, ": no such image or pool: ", words));
    case kEtimedout:
      return absl::UnavailableError(
          absl::StrCat(what, ": the cluster could not be reached: ", words));
    case kErofs:
      if (exclusive) {
        return absl::FailedPreconditionError(absl::StrCat(
            what,
            ": another client holds the image's exclusive lock (it is mapped read-write "
            "elsewhere): ",
            words));
      }
      return absl::InternalError(absl::StrCat(what, ": ", words));
    default:
      return absl::InternalError(absl::StrCat(what, ": ", words));
  }
}

}  // namespace

absl::StatusOr<MappedDevice> KrbdMapper::Map(const MapOptions& options) {
  const ImageSpec& spec = options.image;
  const std::string what = absl::StrCat("mapping RBD image ", spec.ToString());
  RETURN_IF_ERROR(ValidateMapOptions(options, what));

  ASSIGN_OR_RETURN(std::unique_ptr<KeyFile> key_file,
                   KeyFile::Create(options_.key_dir, options.key));
  std::vector<std::string> args = {"device",         "map",        spec.ToString(),
                                   "--id",           options.user, "-m",
                                   options.monitors, "--keyfile",  key_file->path()};
  const bool exclusive = options.single_writer && options_.device_type.empty();
  if (exclusive) RETURN_IF_ERROR(CheckNoWatchers(options, key_file->path()));
  if (options.read_only) args.push_back("--read-only");
  for (std::string& option : TypeOptions(exclusive)) args.push_back(std::move(option));
  absl::StatusOr<CommandResult> result = Run(args);
  key_file.reset();  // rbd has read it (or failed); the key does not outlive the call
  if (!result.ok()) {
    if (absl::IsDeadlineExceeded(result.status())) {
      return Annotate(result.status(), absl::StrCat(what,
                                                    " (the kernel may still complete the "
                                                    "mapping; it will show in the list)"));
    }
    return Annotate(result.status(), what);
  }

  if (result->exit_code != 0) return MapFailure(*result, options, what, exclusive);
  std::optional<std::string> path = DevicePathOf(result->out);
  if (!path.has_value()) {
    return absl::InternalError(absl::StrCat(what, ": rbd succeeded but printed no device: ",
                                            RbdWords(*result, {options.key, options.user})));
  }
  absl::StatusOr<DeviceNumber> number = options_.stat_device(*path);
  if (!number.ok()) {
    // The caller never learns about the device, so undo the mapping rather than leak it.
    absl::Status undo = Unmap(MappedDevice{*path, 0, 0, {}});
    return absl::InternalError(absl::StrCat(
        what, ": mapped as ", *path, " but ", number.status().message(),
        undo.ok() ? "; unmapped it again" : absl::StrCat("; unmapping failed: ", undo.message())));
  }
  return MappedDevice{*path, number->major, number->minor, spec};
}

absl::Status KrbdMapper::Unmap(const MappedDevice& device) {
  std::string what = absl::StrCat("unmapping ", device.path);
  // rbd reads anything else as an image spec.
  if (!absl::StartsWith(device.path, "/dev/")) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a /dev path"));
  }
  if (!device.image.pool.empty() || !device.image.image.empty()) {
    absl::StrAppend(&what, " (image ", device.image.ToString(), ")");
    ASSIGN_OR_RETURN(const bool still_ours, StillMaps(device));
    if (!still_ours) return absl::OkStatus();
  }
  std::vector<std::string> args = {"device", "unmap"};
  for (std::string& option : TypeOptions()) args.push_back(std::move(option));
  args.push_back(device.path);
  ASSIGN_OR_RETURN(const CommandResult result, Run(args));
  if (result.exit_code == 0) return absl::OkStatus();
  if (RbdErrno(result) == kEbusy) {
    return BusyError(
        absl::StrCat(what, ": the device is in use and stays mapped: ", RbdWords(result)));
  }
  if (SaysNotMapped(result)) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", RbdWords(result)));
}

absl::StatusOr<bool> KrbdMapper::StillMaps(const MappedDevice& device) {
  struct stat st {};
  if (stat(options_.sysfs_devices.c_str(), &st) == 0) {
    // The one device's sysfs record: the caller has just listed (Find/List), so no listing of
    // every device again.
    absl::string_view id = device.path;
    if (!absl::ConsumePrefix(&id, "/dev/rbd")) return false;
    ASSIGN_OR_RETURN(const std::optional<KrbdSysfsDevice> d,
                     ReadKrbdSysfsDevice(options_.sysfs_devices, std::string(id)));
    return d.has_value() && d->snap == "-" && ImageSpec{d->pool, d->name, d->nspace} == device.image;
  }
  ASSIGN_OR_RETURN(const std::vector<MappedDevice> mapped, ListFromCli());
  return std::any_of(mapped.begin(), mapped.end(), [&device](const MappedDevice& m) {
    return m.path == device.path && m.image == device.image;
  });
}

absl::StatusOr<std::vector<MappedDevice>> KrbdMapper::List() {
  struct stat st {};
  if (!options_.device_type.empty() || stat(options_.sysfs_devices.c_str(), &st) != 0) {
    return ListFromCli();
  }
  ASSIGN_OR_RETURN(const std::vector<KrbdSysfsDevice> devices,
                   ReadKrbdSysfs(options_.sysfs_devices));
  std::vector<MappedDevice> out;
  for (const KrbdSysfsDevice& d : devices) {
    if (d.snap != "-") continue;  // a snapshot: this plugin maps image heads only
    out.push_back(
        MappedDevice{d.device(), d.number.major, d.number.minor, {d.pool, d.name, d.nspace}});
  }
  return out;
}

absl::StatusOr<std::vector<MappedDevice>> KrbdMapper::ListFromCli() {
  std::vector<std::string> args = {"device", "list", "--format", "json"};
  if (!options_.device_type.empty()) args.insert(args.end(), {"-t", options_.device_type});
  ASSIGN_OR_RETURN(const CommandResult result, Run(args));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("listing mapped RBD devices: ", RbdWords(result)));
  }
  ASSIGN_OR_RETURN(const std::vector<RbdDeviceEntry> entries, ParseRbdDeviceList(result.out));
  std::vector<MappedDevice> out;
  for (const RbdDeviceEntry& entry : entries) {
    if (!entry.snap.empty() && entry.snap != "-") continue;  // a snapshot
    MappedDevice device{entry.device, 0, 0, ImageSpec{entry.pool, entry.name, entry.nspace}};
    absl::StatusOr<DeviceNumber> number = options_.stat_device(entry.device);
    if (number.ok()) {
      device.major = number->major;
      device.minor = number->minor;
    }
    out.push_back(std::move(device));
  }
  return out;
}

absl::Status KrbdMapper::RefreshCapacity(const MappedDevice& /*device*/) {
  return absl::OkStatus();
}

}  // namespace rbdcsi
