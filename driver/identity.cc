#include "driver/identity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "driver/rpc.h"

namespace rbdcsi {

absl::Status CheckWritableDirectory(const std::string& dir) {
  // An O_TMPFILE file proves the directory is writable without leaving anything behind.
  int fd = open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ErrnoToStatus(errno, absl::StrCat("state directory ", dir, " is not writable"));
  }
  close(fd);
  return absl::OkStatus();
}

grpc::Status IdentityService::GetPluginInfo(grpc::ServerContext*,
                                            const csi::v1::GetPluginInfoRequest* request,
                                            csi::v1::GetPluginInfoResponse* response) {
  return RunRpc(tracker_, "GetPluginInfo", *request, [&] {
    response->set_name(config_.driver_name);
    response->set_vendor_version(config_.version);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::GetPluginCapabilities(
    grpc::ServerContext*, const csi::v1::GetPluginCapabilitiesRequest* request,
    csi::v1::GetPluginCapabilitiesResponse* response) {
  return RunRpc(tracker_, "GetPluginCapabilities", *request, [&] {
    using Cap = csi::v1::PluginCapability;
    if (config_.controller) {
      response->add_capabilities()->mutable_service()->set_type(Cap::Service::CONTROLLER_SERVICE);
    }
    response->add_capabilities()->mutable_volume_expansion()->set_type(
        Cap::VolumeExpansion::ONLINE);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::Probe(grpc::ServerContext*, const csi::v1::ProbeRequest* request,
                                    csi::v1::ProbeResponse* response) {
  return RunRpc(tracker_, "Probe", *request, [&] {
    absl::Status usable = CheckWritableDirectory(config_.state_dir);
    // Not ready is an answer, not an error: the CO keeps probing.
    response->mutable_ready()->set_value(usable.ok());
    return absl::OkStatus();
  });
}

}  // namespace rbdcsi
