#include "driver/stage_request.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rbdcsi {

std::string RequestValue(const google::protobuf::Map<std::string, std::string>& map,
                         const std::string& key) {
  auto it = map.find(key);
  return it == map.end() ? std::string() : it->second;
}

absl::Status ReadCredentials(const csi::v1::NodeStageVolumeRequest& req, VolumeRecord& r,
                             MapOptions& map_options) {
  r.user = RequestValue(req.secrets(), "userID");
  map_options.key = RequestValue(req.secrets(), "userKey");
  if (map_options.key.empty() && !RequestValue(req.secrets(), "key").empty()) {
    map_options.key = RequestValue(req.secrets(), "key");
    if (r.user.empty()) {
      r.user = RequestValue(req.volume_context(), "user").empty()
                   ? "admin"
                   : RequestValue(req.volume_context(), "user");
    }
  }
  map_options.user = r.user;
  // Checked here, before anything runs (the mapper checks again): never echoed, it is a secret.
  for (char c : r.user) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (r.user.front() == '-' || u <= 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          "the cephx user (secret userID, or volume_context.user) starts with '-' or holds "
          "whitespace or a control character");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRequired(const MapperTraits& traits, const csi::v1::NodeStageVolumeRequest& req,
                           const VolumeRecord& r, const MapOptions& map_options) {
  auto resolved_secret = [&](const std::string& key) {
    if (key == "userID") return r.user;
    if (key == "userKey") return map_options.key;
    return RequestValue(req.secrets(), key);
  };
  std::vector<std::string> missing;
  for (const std::string& key : traits.required_context) {
    // The monitors may also come from the cluster config, through the clusterID.
    const bool have =
        key == "monitors" ? !r.monitors.empty() : !RequestValue(req.volume_context(), key).empty();
    if (!have) missing.push_back("volume_context." + key);
  }
  for (const std::string& key : traits.required_secrets) {
    if (resolved_secret(key).empty()) missing.push_back("the secret " + key);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", r.mapper, " mapper needs ", absl::StrJoin(missing, " and ")));
  }
  return absl::OkStatus();
}

}  // namespace rbdcsi
