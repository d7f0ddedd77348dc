// ControllerModifyVolume: a VolumeAttributesClass sets an RBD image's I/O limits (QoS).
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/logging.h"
#include "base/status.h"
#include "driver/controller.h"
#include "driver/validation.h"

namespace rbdcsi {

absl::StatusOr<std::map<std::string, uint64_t>> ParseQosParameters(
    const google::protobuf::Map<std::string, std::string>& params) {
  static const std::set<std::string> kLimits = {"iops",       "bps",      "read_iops",
                                                "write_iops", "read_bps", "write_bps"};
  std::map<std::string, uint64_t> limits;
  for (const auto& [key, value] : params) {
    absl::string_view name = key;
    const bool known = absl::ConsumePrefix(&name, "rbd_qos_") &&
                       absl::ConsumeSuffix(&name, "_limit") && kLimits.count(std::string(name)) > 0;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown mutable parameter '", key,
                       "': use rbd_qos_{iops,bps,read_iops,write_iops,read_bps,write_bps}_limit"));
    }
    uint64_t n = 0;
    if (!absl::SimpleAtoi(value, &n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("mutable parameter ", key, ": '", value, "' is not a whole number"));
    }
    limits[std::string(name)] = n;
  }
  return limits;
}

absl::Status ControllerOps::ModifyVolume(const csi::v1::ControllerModifyVolumeRequest& req,
                                         csi::v1::ControllerModifyVolumeResponse*) {
  RETURN_IF_ERROR(RequireNonEmpty(req.volume_id(), "volume_id"));
  ASSIGN_OR_RETURN(auto resolved, Resolve(req.volume_id(), req.secrets()));
  auto& [store, id] = resolved;
  ASSIGN_OR_RETURN(const auto limits, ParseQosParameters(req.mutable_parameters()));
  RETURN_IF_ERROR(locks_->TryLockImage(id, req.volume_id()));
  ImageLockGuard guard(locks_, id);
  RETURN_IF_ERROR(store->Info(id).status());
  RETURN_IF_ERROR(store->SetQos(id, limits));
  Logger("controller")->info("set the I/O limits of volume {}", req.volume_id());
  return absl::OkStatus();
}

grpc::Status ControllerService::ControllerModifyVolume(
    grpc::ServerContext*, const csi::v1::ControllerModifyVolumeRequest* req,
    csi::v1::ControllerModifyVolumeResponse* resp) {
  return RunRpc(tracker_, "ControllerModifyVolume", *req,
                [&] { return ops_->ModifyVolume(*req, resp); });
}

}  // namespace rbdcsi
