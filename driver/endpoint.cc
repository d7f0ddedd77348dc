#include "driver/endpoint.h"

#include <sys/un.h>

#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace rbdcsi {

absl::StatusOr<std::string> ParseUnixEndpoint(std::string_view endpoint_view) {
  const absl::string_view endpoint = AsAbsl(endpoint_view);
  absl::string_view path;
  if (absl::StartsWith(endpoint, "unix://")) {
    path = endpoint.substr(7);
    if (!absl::StartsWith(path, "/")) {
      return absl::InvalidArgumentError(
          absl::StrCat("endpoint '", endpoint,
                       "': after unix:// comes an absolute path, as in unix:///csi/csi.sock"));
    }
  } else if (absl::StartsWith(endpoint, "unix:")) {
    path = endpoint.substr(5);
  } else if (absl::StartsWith(endpoint, "/")) {
    path = endpoint;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "endpoint '", endpoint, "': only unix sockets are supported, as in unix:///csi/csi.sock"));
  }
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("endpoint '", endpoint, "' has no socket path"));
  }
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("endpoint '", endpoint, "': socket path is ",
                                                   path.size(), " bytes, the limit is ",
                                                   sizeof(sockaddr_un::sun_path) - 1));
  }
  return std::string(path);
}

absl::Status ValidateDriverName(std::string_view name_view) {
  const absl::string_view name = AsAbsl(name_view);
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  bool ok = !name.empty() && name.size() <= 63 && alnum(name.front()) && alnum(name.back());
  for (char c : name) ok = ok && (alnum(c) || c == '-' || c == '_' || c == '.');
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "driver name '", name,
      "' is not a valid CSI name: 1-63 characters, starting and ending with a letter or digit, "
      "with only letters, digits, '-', '_' and '.' between (e.g. rbd.rbdcsi.dev)"));
}

}  // namespace rbdcsi
