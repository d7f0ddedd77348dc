#include "driver/mount_stack.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

// Unmounts stacked on one path beyond this are a loop, not a stack.
constexpr int kMaxUnmounts = 64;

}  // namespace

absl::Status UnmountStack(Mounter& mounter, const std::string& path, std::string_view volume_id,
                          const UnmountStackHooks& hooks) {
  const absl::string_view volume = AsAbsl(volume_id);
  for (int round = 0; round < kMaxUnmounts; ++round) {
    ASSIGN_OR_RETURN(std::vector<MountInfo> table, mounter.List());
    std::vector<MountInfo> at = MountsAt(table, path);
    if (at.empty()) return absl::OkStatus();
    if (hooks.check_top) RETURN_IF_ERROR(hooks.check_top(at.back()));
    absl::Status st = mounter.Unmount(path);
    if (st.ok()) continue;
    if (absl::IsNotFound(st)) {
      // Listed but not reachable: e.g. something was mounted over a parent directory.
      return absl::FailedPreconditionError(absl::StrCat(
          "volume ", volume, ": the mount table lists ", path,
          " but it cannot be unmounted through that path (is a parent directory mounted over?)"));
    }
    if (!IsBusy(st) || !hooks.on_busy) {
      return Annotate(st, absl::StrCat("volume ", volume, ": unmounting ", path));
    }
    RETURN_IF_ERROR(hooks.on_busy(st));
  }
  return absl::FailedPreconditionError(absl::StrCat("volume ", volume, ": ", path,
                                                    " is still mounted after ", kMaxUnmounts,
                                                    " unmounts; giving up"));
}

}  // namespace rbdcsi
