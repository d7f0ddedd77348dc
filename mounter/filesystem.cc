#include "mounter/filesystem.h"

#include <blkid/blkid.h>
#include <fcntl.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/fd.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

absl::Status CheckRun(CommandRunner& runner, const std::vector<std::string>& argv) {
  absl::StatusOr<CommandResult> result = runner.Run(argv);
  if (!result.ok()) return result.status();
  if (result->exit_code == 0) return absl::OkStatus();
  std::string text(absl::StripAsciiWhitespace(result->err.empty() ? result->out : result->err));
  return absl::InternalError(
      absl::StrCat(FormatArgv(argv), " failed with exit code ", result->exit_code, ": ", text));
}

class RealFilesystems : public Filesystems {
 public:
  explicit RealFilesystems(CommandRunner& runner) : runner_(runner) {}

  absl::StatusOr<std::string> Probe(const std::string& device) override {
    UniqueFd fd(open(device.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoToStatus(errno, absl::StrCat("opening ", device, " to probe it"));
    blkid_probe probe = blkid_new_probe();
    if (probe == nullptr) return absl::ResourceExhaustedError("libblkid: out of memory");
    std::string type;
    absl::Status status;
    if (blkid_probe_set_device(probe, fd.get(), 0, 0) != 0) {
      status = absl::InternalError(absl::StrCat("libblkid cannot probe ", device));
    } else {
      blkid_probe_enable_superblocks(probe, 1);
      blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_TYPE);
      blkid_probe_enable_partitions(probe, 1);
      int rc = blkid_do_safeprobe(probe);
      const char* value = nullptr;
      if (rc == 0 && blkid_probe_lookup_value(probe, "TYPE", &value, nullptr) == 0) {
        type = value;
      } else if (rc == 0 && blkid_probe_lookup_value(probe, "PTTYPE", &value, nullptr) == 0) {
        type = absl::StrCat("partition table ", value);
      } else if (rc == -2) {
        status = absl::FailedPreconditionError(
            absl::StrCat(device, " carries ambiguous signatures; refusing to touch it"));
      } else if (rc < 0) {
        status = absl::InternalError(absl::StrCat("libblkid failed to probe ", device));
      }
    }
    blkid_free_probe(probe);
    if (!status.ok()) return status;
    return type;
  }

  absl::Status Format(const std::string& device, const std::string& fstype) override {
    if (fstype == "ext4") return CheckRun(runner_, {"mkfs.ext4", "-q", "-F", device});
    if (fstype == "xfs") return CheckRun(runner_, {"mkfs.xfs", "-q", device});
    return absl::InvalidArgumentError(absl::StrCat("unsupported filesystem type ", fstype));
  }

  absl::Status Grow(const std::string& device, const std::string& mount_point,
                    const std::string& fstype) override {
    if (fstype == "ext4") return CheckRun(runner_, {"resize2fs", device});
    if (fstype == "xfs") return CheckRun(runner_, {"xfs_growfs", mount_point});
    return absl::InvalidArgumentError(absl::StrCat("cannot grow filesystem type ", fstype));
  }

 private:
  CommandRunner& runner_;
};

}  // namespace

bool IsSupportedFilesystem(const std::string& fstype) {
  return fstype == "ext4" || fstype == "xfs";
}

std::unique_ptr<Filesystems> NewRealFilesystems(CommandRunner& runner) {
  return std::make_unique<RealFilesystems>(runner);
}

}  // namespace rbdcsi
