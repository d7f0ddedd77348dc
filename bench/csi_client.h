// A small synchronous CSI client for the benchmarks: the calls a kubelet and an external
// provisioner make, for mount volumes with ext4 and SINGLE_NODE_WRITER access.
#ifndef RBDCSI_BENCH_CSI_CLIENT_H_
#define RBDCSI_BENCH_CSI_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "csi.grpc.pb.h"

namespace rbdcsi {

// Thread-safe: every call uses its own context on the shared channel.
class CsiClient {
 public:
  explicit CsiClient(const std::string& socket_path);

  // CreateVolume `name` of `bytes`; returns the volume (id and context).
  absl::StatusOr<csi::v1::Volume> Create(const std::string& name, int64_t bytes);
  grpc::Status Delete(const std::string& volume_id);
  grpc::Status Stage(const csi::v1::Volume& volume, const std::string& staging);
  grpc::Status Publish(const csi::v1::Volume& volume, const std::string& staging,
                       const std::string& target);
  grpc::Status Unpublish(const std::string& volume_id, const std::string& target);
  grpc::Status Unstage(const std::string& volume_id, const std::string& staging);
  grpc::Status Stats(const std::string& volume_id, const std::string& path);
  grpc::Status Capabilities();

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<csi::v1::Node::Stub> node_;
  std::unique_ptr<csi::v1::Controller::Stub> controller_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_BENCH_CSI_CLIENT_H_
