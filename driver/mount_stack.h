// The one place that unmounts everything stacked on a path (unstage and unpublish).
#ifndef RBDCSI_DRIVER_MOUNT_STACK_H_
#define RBDCSI_DRIVER_MOUNT_STACK_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "mounter/mounter.h"

namespace rbdcsi {

struct UnmountStackHooks {
  // Called with the top mount before it is unmounted; a non-OK status stops the unmounting
  // and is returned (e.g. a mount that is not this volume's). Null: every mount goes.
  std::function<absl::Status(const MountInfo& top)> check_top;
  // Called when an unmount was busy (IsBusy()); OK means try again, anything else is returned.
  // Null: the busy status is returned.
  std::function<absl::Status(const absl::Status& busy)> on_busy;
};

// Unmounts the mounts at `path`, topmost first, until none is left; never lazily. OK when
// nothing is mounted there. FAILED_PRECONDITION when the table lists a mount that cannot be
// reached through `path` (a parent directory mounted over) or after 64 rounds. Other unmount
// errors are returned annotated with `volume_id`.
// `table`, when given, is a mount table the caller has just read: the first pass uses it
// instead of reading one more.
absl::Status UnmountStack(Mounter& mounter, const std::string& path, std::string_view volume_id,
                          const UnmountStackHooks& hooks,
                          const std::vector<MountInfo>* table = nullptr);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_MOUNT_STACK_H_
