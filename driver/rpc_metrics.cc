#include "driver/rpc_metrics.h"

#include "csi.pb.h"

namespace rbdcsi {
namespace {

std::string_view UnstageOutcome(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "unmapped";
    case absl::StatusCode::kFailedPrecondition:
      return "busy";
    case absl::StatusCode::kAborted:
      return "conflict";
    default:
      return "error";
  }
}

}  // namespace

CallTracker::Observer RpcMetricsObserver(Metrics& metrics) {
  return [&metrics](std::string_view method, const google::protobuf::Message& request,
                    const absl::Status& status, double seconds) {
    metrics.Rpc(method, absl::StatusCodeToString(status.code()), seconds);
    const auto* unstage = dynamic_cast<const csi::v1::NodeUnstageVolumeRequest*>(&request);
    if (unstage == nullptr) return;
    metrics.UnstageAttempt(UnstageOutcome(status.code()));
    if (status.ok()) {
      metrics.UnstageBlocked(unstage->volume_id(), false);
    } else if (absl::IsFailedPrecondition(status)) {
      metrics.UnstageBlocked(unstage->volume_id(), true);
    }
  };
}

}  // namespace rbdcsi
