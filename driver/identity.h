// csi.v1.Identity.
#ifndef RBDCSI_DRIVER_IDENTITY_H_
#define RBDCSI_DRIVER_IDENTITY_H_

#include <string>

#include "absl/status/status.h"
#include "csi.grpc.pb.h"
#include "driver/rpc.h"

namespace rbdcsi {

struct IdentityConfig {
  std::string driver_name;
  std::string version;
  std::string state_dir;  // Probe reports ready only while this directory is writable.
  bool controller = false;
};

// Thread-safe.
class IdentityService final : public csi::v1::Identity::Service {
 public:
  IdentityService(IdentityConfig config, CallTracker* tracker = nullptr)
      : config_(std::move(config)), tracker_(tracker) {}

  grpc::Status GetPluginInfo(grpc::ServerContext*, const csi::v1::GetPluginInfoRequest* request,
                             csi::v1::GetPluginInfoResponse* response) override;
  grpc::Status GetPluginCapabilities(grpc::ServerContext*,
                                     const csi::v1::GetPluginCapabilitiesRequest* request,
                                     csi::v1::GetPluginCapabilitiesResponse* response) override;
  grpc::Status Probe(grpc::ServerContext*, const csi::v1::ProbeRequest* request,
                     csi::v1::ProbeResponse* response) override;

 private:
  const IdentityConfig config_;
  CallTracker* tracker_;
};

// OK when `dir` is a directory this process can create files in; otherwise the reason.
absl::Status CheckWritableDirectory(const std::string& dir);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_IDENTITY_H_
