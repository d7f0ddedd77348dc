#include "driver/registration.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/status.h"
#include "driver/endpoint.h"
#include "driver/rpc.h"

namespace rbdcsi {

absl::StatusOr<std::string> RegistrationSocketPath(const std::string& registration_dir,
                                                   const std::string& driver_name) {
  if (!absl::StartsWith(registration_dir, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", registration_dir, "' must be an absolute path"));
  }
  std::string dir = registration_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string path = absl::StrCat(dir == "/" ? "" : dir, "/", driver_name, "-reg.sock");
  // The endpoint parser knows the socket address limits; reuse it for the same check.
  RETURN_IF_ERROR(ParseUnixEndpoint(path).status());
  return path;
}

grpc::Status RegistrationService::GetInfo(grpc::ServerContext*,
                                          const pluginregistration::InfoRequest* request,
                                          pluginregistration::PluginInfo* response) {
  return RunRpc(nullptr, "GetInfo", *request, [&] {
    response->set_type("CSIPlugin");
    response->set_name(config_.driver_name);
    response->set_endpoint(config_.csi_socket_path);
    for (const std::string& v : config_.supported_versions) response->add_supported_versions(v);
    return absl::OkStatus();
  });
}

grpc::Status RegistrationService::NotifyRegistrationStatus(
    grpc::ServerContext*, const pluginregistration::RegistrationStatus* request,
    pluginregistration::RegistrationStatusResponse*) {
  return RunRpc(nullptr, "NotifyRegistrationStatus", *request, [&] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      registered_ = request->plugin_registered();
    }
    auto log = Logger("registration");
    if (request->plugin_registered()) {
      log->info("kubelet registered driver {} (CSI endpoint {})", config_.driver_name,
                config_.csi_socket_path);
    } else {
      log->error("kubelet refused to register driver {}: {}", config_.driver_name,
                 request->error().empty() ? "(no reason given)" : request->error());
    }
    return absl::OkStatus();
  });
}

std::optional<bool> RegistrationService::registered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return registered_;
}

KubeletRegistration::KubeletRegistration(std::string socket_path, RegistrationConfig config)
    : service_(std::move(config)),
      server_(ServerOptions{std::move(socket_path), std::chrono::seconds(1)}) {
  server_.AddService(&service_);
}

absl::Status KubeletRegistration::Start() { return server_.Start(); }

void KubeletRegistration::Stop() { server_.Shutdown(); }

}  // namespace rbdcsi
