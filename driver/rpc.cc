#include "driver/rpc.h"

#include <atomic>
#include <chrono>
#include <memory>

#include "absl/strings/str_format.h"
#include "base/logging.h"
#include "base/status.h"
#include "csi.pb.h"

namespace rbdcsi {
namespace {

void StripSecrets(google::protobuf::Message& message) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const auto* field : fields) {
    if (field->options().GetExtension(csi::v1::csi_secret)) {
      reflection->ClearField(&message, field);
      continue;
    }
    if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        StripSecrets(*reflection->MutableRepeatedMessage(&message, field, i));
      }
    } else {
      StripSecrets(*reflection->MutableMessage(&message, field));
    }
  }
}

std::atomic<uint64_t> next_request_id{1};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::string RedactedSummary(const google::protobuf::Message& message) {
  std::unique_ptr<google::protobuf::Message> copy(message.New());
  copy->CopyFrom(message);
  // Fields this build does not know could be secrets of a newer CSI version.
  copy->DiscardUnknownFields();
  StripSecrets(*copy);
  return copy->ShortDebugString();
}

bool CallTracker::Enter() {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) return false;
  ++active_;
  return true;
}

void CallTracker::Exit() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--active_ == 0) idle_.notify_all();
}

bool CallTracker::Drain(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  draining_ = true;
  return idle_.wait_until(lock, deadline, [this] { return active_ == 0; });
}

grpc::Status RunRpc(CallTracker* tracker, std::string_view method,
                    const google::protobuf::Message& request,
                    const std::function<absl::Status()>& handler) {
  static const auto logger = Logger("rpc");
  const uint64_t id = next_request_id.fetch_add(1);
  const auto start = std::chrono::steady_clock::now();
  absl::Status status;
  if (tracker != nullptr && !tracker->Enter()) {
    status = absl::UnavailableError("the plugin is shutting down; retry against the new instance");
  } else {
    try {
      status = handler();
    } catch (const std::exception& e) {
      status = absl::InternalError(
          absl::StrFormat("%s failed unexpectedly: %s", AsAbsl(method), e.what()));
    }
    if (tracker != nullptr) tracker->Exit();
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (tracker != nullptr && tracker->observer())
    tracker->observer()(method, request, status, ms / 1000);
  const std::string code = absl::StatusCodeToString(status.code());
  if (status.ok()) {
    logger->info("req={} method={} code={} duration_ms={:.3f} request={{{}}}", id, method, code, ms,
                 RedactedSummary(request));
  } else {
    logger->warn("req={} method={} code={} duration_ms={:.3f} request={{{}}} error=\"{}\"", id,
                 method, code, ms, RedactedSummary(request), status.message());
  }
  return ToGrpcStatus(status);
}

}  // namespace rbdcsi
