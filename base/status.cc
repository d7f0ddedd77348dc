#include "base/status.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace rbdcsi {
namespace {

constexpr char kBusyPayloadUrl[] = "rbdcsi/busy";

absl::StatusCode CodeForErrno(int err) {
  switch (err) {
    case EBUSY:
      return absl::StatusCode::kFailedPrecondition;
    case ENOENT:
    case ENXIO:
    case ENODEV:
      return absl::StatusCode::kNotFound;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
      return absl::StatusCode::kInvalidArgument;
    case EPERM:
    case EACCES:
      return absl::StatusCode::kPermissionDenied;
    case EAGAIN:
    case EINTR:
    case ETIMEDOUT:
      return absl::StatusCode::kUnavailable;
    case ENOSPC:
      return absl::StatusCode::kResourceExhausted;
    case EFBIG:  // larger than the file system holds
      return absl::StatusCode::kOutOfRange;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

absl::Status ErrnoToStatus(int err, std::string_view what) {
  const char* name = strerrorname_np(err);
  absl::Status status(CodeForErrno(err), absl::StrCat(AsAbsl(what), ": ", std::strerror(err), " (",
                                                      name ? name : std::to_string(err), ")"));
  if (err == EBUSY) status.SetPayload(kBusyPayloadUrl, absl::Cord("1"));
  return status;
}

absl::Status BusyError(std::string_view message) {
  absl::Status status = absl::FailedPreconditionError(AsAbsl(message));
  status.SetPayload(kBusyPayloadUrl, absl::Cord("1"));
  return status;
}

bool IsBusy(const absl::Status& status) { return status.GetPayload(kBusyPayloadUrl).has_value(); }

absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(AsAbsl(context), ": ", status.message()));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

}  // namespace rbdcsi
