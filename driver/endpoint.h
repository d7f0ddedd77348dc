// The --endpoint flag and the CSI driver name.
#ifndef RBDCSI_DRIVER_ENDPOINT_H_
#define RBDCSI_DRIVER_ENDPOINT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rbdcsi {

// Returns the socket path of a unix endpoint. Accepted: "unix:///abs/path", "unix:/abs/path",
// "unix:relative/path" and a bare "/abs/path". INVALID_ARGUMENT for other schemes (tcp://...),
// "unix://host/..." forms, empty paths and paths longer than a sockaddr_un holds.
absl::StatusOr<std::string> ParseUnixEndpoint(std::string_view endpoint);

// CSI names: 1-63 characters, alphanumerics at both ends, alphanumerics, '-', '_' and '.'
// between. INVALID_ARGUMENT with the rule otherwise.
absl::Status ValidateDriverName(std::string_view name);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_ENDPOINT_H_
