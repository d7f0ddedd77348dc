// pluginregistration.Registration: how the kubelet finds this driver without a registrar
// sidecar. The kubelet watches its plugins_registry directory; when this service's socket
// appears there it calls GetInfo, dials the CSI endpoint it names (NodeGetInfo), and reports
// the outcome through NotifyRegistrationStatus.
#ifndef RBDCSI_DRIVER_REGISTRATION_H_
#define RBDCSI_DRIVER_REGISTRATION_H_

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "driver/server.h"
#include "pluginregistration.grpc.pb.h"

namespace rbdcsi {

struct RegistrationConfig {
  std::string driver_name;
  std::string csi_socket_path;  // absolute: the kubelet dials it as given
  std::vector<std::string> supported_versions = {"1.0.0"};
};

// The registration socket of `driver_name` in `registration_dir`, named as node-driver-registrar
// names it ("<driver>-reg.sock"). INVALID_ARGUMENT when `registration_dir` is not absolute or the
// path does not fit a unix socket address.
absl::StatusOr<std::string> RegistrationSocketPath(const std::string& registration_dir,
                                                   const std::string& driver_name);

// Thread-safe.
class RegistrationService final : public pluginregistration::Registration::Service {
 public:
  explicit RegistrationService(RegistrationConfig config) : config_(std::move(config)) {}

  // Answers type "CSIPlugin", the driver name, the CSI socket path and the CSI versions served.
  grpc::Status GetInfo(grpc::ServerContext*, const pluginregistration::InfoRequest* request,
                       pluginregistration::PluginInfo* response) override;
  // Logs the kubelet's verdict (an error when it refused the plugin) and remembers it.
  grpc::Status NotifyRegistrationStatus(
      grpc::ServerContext*, const pluginregistration::RegistrationStatus* request,
      pluginregistration::RegistrationStatusResponse* response) override;

  // The last verdict: true when registered, false when refused, nullopt before any.
  std::optional<bool> registered() const;

 private:
  const RegistrationConfig config_;
  mutable std::mutex mu_;
  std::optional<bool> registered_;
};

// The registration socket and its service, started after the CSI socket serves (the kubelet
// dials the CSI endpoint as soon as it has read GetInfo) and stopped before it. Not copyable.
class KubeletRegistration {
 public:
  // `socket_path` from RegistrationSocketPath.
  KubeletRegistration(std::string socket_path, RegistrationConfig config);

  // Serves on the socket (creating its directory). The same codes as Server::Start.
  absl::Status Start();
  // Removes the socket, so the kubelet deregisters the driver. Blocks until done.
  void Stop();

  const RegistrationService& service() const { return service_; }

 private:
  RegistrationService service_;
  Server server_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_REGISTRATION_H_
