// The one wrapper every CSI handler runs through: logs the call once and converts the result.
#ifndef RBDCSI_DRIVER_RPC_H_
#define RBDCSI_DRIVER_RPC_H_

#include <functional>
#include <string>
#include <string_view>

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace rbdcsi {

// absl and gRPC share their code numbering; the message is kept as is.
grpc::Status ToGrpcStatus(const absl::Status& status);

// A one-line text form of `message` with every field marked (csi.v1.csi_secret) removed,
// at any depth. Safe to log.
std::string RedactedSummary(const google::protobuf::Message& message);

// Runs `handler` and logs one line: request id, method, duration, resulting code and the
// redacted request (and the error message on failure). Thread-safe.
grpc::Status RunRpc(std::string_view method, const google::protobuf::Message& request,
                    const std::function<absl::Status()>& handler);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_RPC_H_
