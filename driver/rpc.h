// The one wrapper every CSI handler runs through: logs the call once and converts the result.
#ifndef RBDCSI_DRIVER_RPC_H_
#define RBDCSI_DRIVER_RPC_H_

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace rbdcsi {

// absl and gRPC share their code numbering; the message is kept as is.
grpc::Status ToGrpcStatus(const absl::Status& status);

// A one-line text form of `message` with every field marked (csi.v1.csi_secret) removed,
// at any depth, and every secret value redacted wherever else it appears (a path, a mount
// flag). Safe to log.
std::string RedactedSummary(const google::protobuf::Message& message);

// The longest string any request field may hold (paths, ids, each key and value of a map).
inline constexpr size_t kMaxRequestStringBytes = 4096;

// INVALID_ARGUMENT naming the field when a string field anywhere in `message` is longer than
// kMaxRequestStringBytes or not valid UTF-8, or a map has more than 128 entries. The value is
// never quoted. RunRpc checks every request with this before its handler runs.
absl::Status CheckRequestFields(const google::protobuf::Message& message);

// Every value of every (csi.v1.csi_secret) field of `message`, at any depth.
std::vector<std::string> SecretValues(const google::protobuf::Message& message);

// Counts calls in flight so that a stop can wait for exactly those, and no longer: gRPC's own
// Shutdown(deadline) also waits for idle client connections (kubelet keeps one open) until
// the deadline. Thread-safe.
class CallTracker {
 public:
  // Told about every finished call (method, request, result, seconds), e.g. to count it. Set
  // before the server starts; called on the handler's thread.
  using Observer =
      std::function<void(std::string_view method, const google::protobuf::Message& request,
                         const absl::Status& status, double seconds)>;
  void SetObserver(Observer observer) { observer_ = std::move(observer); }
  const Observer& observer() const { return observer_; }

  // False once Drain has begun: the call must be refused.
  bool Enter();
  void Exit();
  // Refuses new calls from now on and waits until none is in flight or `deadline` passes.
  // Returns true when idle.
  bool Drain(std::chrono::steady_clock::time_point deadline);

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;
  bool draining_ = false;
  Observer observer_;
};

// Runs `handler` and logs one line: request id, method, duration, resulting code and the
// redacted request (and the error message on failure). The request's fields are checked
// (CheckRequestFields) first; every secret value of the request is redacted from the error. With a
// tracker, a call arriving while the server stops gets UNAVAILABLE. Thread-safe.
grpc::Status RunRpc(CallTracker* tracker, std::string_view method,
                    const google::protobuf::Message& request,
                    const std::function<absl::Status()>& handler);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_RPC_H_
