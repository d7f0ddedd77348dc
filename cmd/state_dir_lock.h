// The state directory's lock: one rbdcsi process (`serve`, or `gc`) works on a state directory at
// a time.
#ifndef RBDCSI_CMD_STATE_DIR_LOCK_H_
#define RBDCSI_CMD_STATE_DIR_LOCK_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/fd.h"

namespace rbdcsi {

// Locks STATE_DIR/lock (flock, without waiting) for as long as the returned descriptor is open,
// and writes "PID ROLE" into it (`role`: "serve" or "gc"). FAILED_PRECONDITION when another
// process holds it: "--state-dir DIR is in use by another rbdcsi ROLE (pid N)", with the holder's
// role and pid as it wrote them. A crashed holder's lock goes with it.
absl::StatusOr<UniqueFd> LockStateDir(const std::string& state_dir, std::string_view role);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_STATE_DIR_LOCK_H_
