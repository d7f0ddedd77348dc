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
                          const UnmountStackHooks& hooks, const std::vector<MountInfo>* table) {
  const absl::string_view volume = AsAbsl(volume_id);
  // The table is read once per pass; each mount it lists at `path` is then unmounted in turn
  // (the next one down is the new top). Reading it after every unmount made N volumes cost
  // O(N^2): each read formats every mount of the namespace.
  std::vector<MountInfo> at = table != nullptr ? MountsAt(*table, path) : std::vector<MountInfo>();
  bool read = table != nullptr;
  if (read && at.empty()) return absl::OkStatus();
  for (int round = 0; round < kMaxUnmounts; ++round) {
    if (at.empty()) {
      // Done when nothing is reachable at `path` any more, unless the table was never read:
      // a mount hidden under one on a parent directory shows only there.
      if (read) {
        ASSIGN_OR_RETURN(const bool mounted, mounter.IsMountPoint(path));
        if (!mounted) return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(std::vector<MountInfo> fresh, mounter.List());
      read = true;
      at = MountsAt(fresh, path);
      if (at.empty()) return absl::OkStatus();
    }
    if (hooks.check_top) RETURN_IF_ERROR(hooks.check_top(at.back()));
    absl::Status st = mounter.Unmount(path);
    if (st.ok()) {
      at.pop_back();
      continue;
    }
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
    at.clear();  // the wait may have changed anything: read the table again
    read = false;
  }
  return absl::FailedPreconditionError(absl::StrCat("volume ", volume, ": ", path,
                                                    " is still mounted after ", kMaxUnmounts,
                                                    " unmounts; giving up"));
}

}  // namespace rbdcsi
