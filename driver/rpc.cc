#include "driver/rpc.h"

#include <atomic>
#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/text.h"
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

constexpr size_t kMaxMapEntries = 128;
constexpr size_t kMaxLoggedRequestBytes = 2048;

using google::protobuf::FieldDescriptor;

absl::Status CheckString(const std::string& value, const FieldDescriptor& field,
                         const std::string& where) {
  if (value.size() > kMaxRequestStringBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " is longer than ", kMaxRequestStringBytes, " bytes"));
  }
  if (field.type() == FieldDescriptor::TYPE_STRING && !IsValidUtf8(value)) {
    return absl::InvalidArgumentError(absl::StrCat(where, " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

absl::Status CheckFields(const google::protobuf::Message& message, const std::string& prefix) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string where = prefix + field->name();
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    if (field->is_map() && static_cast<size_t>(count) > kMaxMapEntries) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " has more than ", kMaxMapEntries, " entries"));
    }
    for (int i = 0; i < count; ++i) {
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        std::string scratch;
        const std::string& value =
            field->is_repeated()
                ? reflection->GetRepeatedStringReference(message, field, i, &scratch)
                : reflection->GetStringReference(message, field, &scratch);
        RETURN_IF_ERROR(CheckString(value, *field, where));
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const google::protobuf::Message& sub =
            field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                 : reflection->GetMessage(message, field);
        RETURN_IF_ERROR(CheckFields(sub, where + "."));
      }
    }
  }
  return absl::OkStatus();
}

// Every string anywhere below a (csi.v1.csi_secret) field: the values of a secrets map.
void CollectSecrets(const google::protobuf::Message& message, bool inside_secret,
                    std::vector<std::string>& out) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const bool secret = inside_secret || field->options().GetExtension(csi::v1::csi_secret);
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING && secret &&
          !(field->containing_type()->options().map_entry() && field->name() == "key")) {
        out.push_back(field->is_repeated() ? reflection->GetRepeatedString(message, field, i)
                                           : reflection->GetString(message, field));
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        CollectSecrets(field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                            : reflection->GetMessage(message, field),
                       secret, out);
      }
    }
  }
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status CheckRequestFields(const google::protobuf::Message& message) {
  return CheckFields(message, "");
}

std::vector<std::string> SecretValues(const google::protobuf::Message& message) {
  std::vector<std::string> out;
  CollectSecrets(message, false, out);
  return out;
}

// Replaces every secret value inside every string field of `message` (a path or a mount flag
// that holds a secret), on the raw bytes: the text form would escape odd bytes first.
void RedactStrings(google::protobuf::Message& message, const std::vector<std::string>& secrets) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        if (field->is_repeated()) {
          reflection->SetRepeatedString(
              &message, field, i,
              RedactSecrets(reflection->GetRepeatedString(message, field, i), secrets));
        } else {
          reflection->SetString(&message, field,
                                RedactSecrets(reflection->GetString(message, field), secrets));
        }
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        RedactStrings(field->is_repeated() ? *reflection->MutableRepeatedMessage(&message, field, i)
                                           : *reflection->MutableMessage(&message, field),
                      secrets);
      }
    }
  }
}

std::string RedactedSummary(const google::protobuf::Message& message) {
  std::unique_ptr<google::protobuf::Message> copy(message.New());
  copy->CopyFrom(message);
  // Fields this build does not know could be secrets of a newer CSI version.
  copy->DiscardUnknownFields();
  StripSecrets(*copy);
  const std::vector<std::string> secrets = SecretValues(message);
  if (!secrets.empty()) RedactStrings(*copy, secrets);
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
      status = CheckRequestFields(request);
      if (status.ok()) status = handler();
    } catch (const std::exception& e) {
      status = absl::InternalError(
          absl::StrFormat("%s failed unexpectedly: %s", AsAbsl(method), e.what()));
    }
    if (tracker != nullptr) tracker->Exit();
  }
  if (!status.ok()) {
    // Whatever a handler or a tool under it wrote, no secret of the request leaves in an error.
    status = absl::Status(status.code(),
                          RedactSecrets(std::string(status.message()), SecretValues(request)));
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (tracker != nullptr && tracker->observer())
    tracker->observer()(method, request, status, ms / 1000);
  const std::string code = absl::StatusCodeToString(status.code());
  std::string summary = RedactedSummary(request);
  if (summary.size() > kMaxLoggedRequestBytes) {
    // A hostile request must not flood the log: its head is enough to recognise it.
    const size_t full = summary.size();
    summary.resize(kMaxLoggedRequestBytes);
    absl::StrAppend(&summary, "... (", full, " bytes)");
  }
  if (status.ok()) {
    logger->info("req={} method={} code={} duration_ms={:.3f} request={{{}}}", id, method, code, ms,
                 summary);
  } else {
    logger->warn("req={} method={} code={} duration_ms={:.3f} request={{{}}} error=\"{}\"", id,
                 method, code, ms, summary, status.message());
  }
  return ToGrpcStatus(status);
}

}  // namespace rbdcsi
