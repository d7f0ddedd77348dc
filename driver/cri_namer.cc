#include "driver/cri_namer.h"

#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "cri.grpc.pb.h"
#include "cri_v1alpha2.grpc.pb.h"

namespace rbdcsi {
namespace {

constexpr size_t kMaxRemembered = 4096;
constexpr auto kQuietAfterFailure = std::chrono::minutes(1);

std::string Label(const runtime::v1::ContainerStatus& status, const std::string& key) {
  auto it = status.labels().find(key);
  return it == status.labels().end() ? "" : it->second;
}

template <typename Stub>
grpc::Status Ask(Stub& stub, const runtime::v1::ContainerStatusRequest& request,
                 runtime::v1::ContainerStatusResponse& response,
                 std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  return stub.ContainerStatus(&ctx, request, &response);
}

}  // namespace

absl::StatusOr<ContainerNames> QueryContainerNames(const std::shared_ptr<grpc::Channel>& channel,
                                                   const std::string& container_id,
                                                   std::chrono::milliseconds timeout) {
  runtime::v1::ContainerStatusRequest request;
  request.set_container_id(container_id);
  runtime::v1::ContainerStatusResponse response;
  auto v1 = runtime::v1::RuntimeService::NewStub(channel);
  grpc::Status st = Ask(*v1, request, response, timeout);
  if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    auto v1alpha2 = runtime::v1alpha2::RuntimeService::NewStub(channel);
    st = Ask(*v1alpha2, request, response, timeout);
  }
  if (!st.ok()) {
    return absl::Status(
        static_cast<absl::StatusCode>(st.error_code()),
        absl::StrCat("CRI ContainerStatus of ", container_id, ": ", st.error_message()));
  }
  const runtime::v1::ContainerStatus& status = response.status();
  ContainerNames names{Label(status, "io.kubernetes.pod.namespace"),
                       Label(status, "io.kubernetes.pod.name"),
                       Label(status, "io.kubernetes.container.name")};
  if (names.container_name.empty()) names.container_name = status.metadata().name();
  if (names.pod_name.empty()) {
    return absl::NotFoundError(
        absl::StrCat("container ", container_id, " carries no Kubernetes pod labels"));
  }
  return names;
}

CriContainerNamer::CriContainerNamer(const std::string& socket_path,
                                     std::chrono::milliseconds timeout)
    : endpoint_(socket_path),
      timeout_(timeout),
      channel_(grpc::CreateChannel("unix:" + socket_path, grpc::InsecureChannelCredentials())) {}

void CriContainerNamer::Name(ContainerIdentity& identity) const {
  if (identity.container_id.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = known_.find(identity.container_id);
    if (it == known_.end() && std::chrono::steady_clock::now() < quiet_until_) return;
    if (it != known_.end()) {
      identity.pod_namespace = it->second.pod_namespace;
      identity.pod_name = it->second.pod_name;
      identity.container_name = it->second.container_name;
      return;
    }
  }
  absl::StatusOr<ContainerNames> names =
      QueryContainerNames(channel_, identity.container_id, timeout_);
  std::lock_guard<std::mutex> lock(mu_);
  if (!names.ok()) {
    if (names.status().code() != absl::StatusCode::kNotFound) {
      quiet_until_ = std::chrono::steady_clock::now() + kQuietAfterFailure;
      Logger("cri")->warn("cannot name containers through {} for a minute: {}", endpoint_,
                          names.status().message());
    }
    return;
  }
  if (known_.size() >= kMaxRemembered) known_.clear();
  known_[identity.container_id] = *names;
  identity.pod_namespace = names->pod_namespace;
  identity.pod_name = names->pod_name;
  identity.container_name = names->container_name;
}

}  // namespace rbdcsi
