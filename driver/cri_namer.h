// Names holders' pods and containers by asking the node's container runtime over the CRI.
#ifndef RBDCSI_DRIVER_CRI_NAMER_H_
#define RBDCSI_DRIVER_CRI_NAMER_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "holders/cgroup.h"

namespace rbdcsi {

// The Kubernetes names of one container, from its runtime.
struct ContainerNames {
  std::string pod_namespace;
  std::string pod_name;
  std::string container_name;
};

// Asks the runtime about a container id: RuntimeService.ContainerStatus of CRI runtime.v1, and
// of runtime.v1alpha2 when the runtime does not serve v1 (UNIMPLEMENTED). Returns NOT_FOUND when
// the runtime does not know the container or it carries no kubelet labels, the runtime's error
// otherwise (UNAVAILABLE when nothing answers, DEADLINE_EXCEEDED after `timeout`).
absl::StatusOr<ContainerNames> QueryContainerNames(const std::shared_ptr<grpc::Channel>& channel,
                                                   const std::string& container_id,
                                                   std::chrono::milliseconds timeout);

// A ContainerNamer over the CRI socket at `socket_path` (/run/containerd/containerd.sock).
// Remembers the names of the containers it has seen (they never change) and, for a while, that the
// runtime could not be reached, so a scan never waits on a dead socket more than once per minute.
// Thread-safe.
class CriContainerNamer final : public ContainerNamer {
 public:
  explicit CriContainerNamer(const std::string& socket_path,
                             std::chrono::milliseconds timeout = std::chrono::seconds(1));

  void Name(ContainerIdentity& identity) const override;

 private:
  const std::string endpoint_;
  const std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  mutable std::mutex mu_;
  mutable std::map<std::string, ContainerNames> known_;
  mutable std::chrono::steady_clock::time_point quiet_until_{};
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_CRI_NAMER_H_
