// Status helpers shared by every rbdcsi library.
//
// Debian 12's abseil (20220623) has no status macros, so the two we use live here, once.
#ifndef RBDCSI_BASE_STATUS_H_
#define RBDCSI_BASE_STATUS_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rbdcsi {

// Debian's abseil is built as C++14, so absl::string_view is its own type there, not an alias of
// std::string_view. Our interfaces take std::string_view; this crosses into abseil calls.
inline absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

// Turns an errno value into a Status whose message reads "<what>: <strerror> (errno name)".
// EBUSY maps to FAILED_PRECONDITION (someone else holds the object), ENOENT to NOT_FOUND,
// EEXIST to ALREADY_EXISTS, EINVAL/ENAMETOOLONG to INVALID_ARGUMENT, EPERM/EACCES to
// PERMISSION_DENIED, EAGAIN/EINTR/ETIMEDOUT to UNAVAILABLE, anything else to INTERNAL.
// This is the only place errno becomes a Status.
absl::Status ErrnoToStatus(int err, std::string_view what);

// A FAILED_PRECONDITION status marked as "device or resource busy", for busy reports that do
// not come from errno (e.g. `rbd unmap` exiting with status 16).
absl::Status BusyError(std::string_view message);

// Returns true when `status` came from ErrnoToStatus(EBUSY, ...) or BusyError().
bool IsBusy(const absl::Status& status);

// Prefixes a status message with context, keeping the code. OK stays OK.
absl::Status Annotate(const absl::Status& status, std::string_view context);

}  // namespace rbdcsi

#define RBDCSI_CONCAT_INNER_(a, b) a##b
#define RBDCSI_CONCAT_(a, b) RBDCSI_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    const ::absl::Status rbdcsi_status_ = (expr);    \
    if (!rbdcsi_status_.ok()) return rbdcsi_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(RBDCSI_CONCAT_(rbdcsi_statusor_, __LINE__), lhs, expr)

#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#endif  // RBDCSI_BASE_STATUS_H_
