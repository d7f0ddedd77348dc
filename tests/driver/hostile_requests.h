// The hostile requests of hostile_requests_test: every class of issue 8 as calls over the real
// socket, each with the code rbdcsi documents for it.
#ifndef RBDCSI_TESTS_DRIVER_HOSTILE_REQUESTS_H_
#define RBDCSI_TESTS_DRIVER_HOSTILE_REQUESTS_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "csi.grpc.pb.h"
#include "tests/support/plugin.h"

namespace rbdcsi {

// The code most hostile requests must get.
constexpr grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;

struct HostileCase {
  std::string klass;  // "bounds", "utf8", "mount-flags", "ids", "secrets", "codes"
  std::string name;
  std::function<grpc::Status()> call;
  grpc::StatusCode want;
};

class HostileCases {
 public:
  // `staged` is staged at `staging` and published at `target`; `fresh` exists, not staged.
  // `kubelet` is the directory the paths live under. All() makes the targets of the path cases
  // (symlinks under `kubelet`, a directory beside it): call it before taking a snapshot.
  HostileCases(Plugin* plugin, std::string staged, std::string fresh, std::string staging,
               std::string target, std::string kubelet);

  std::vector<HostileCase> All();
  // Every secret value the cases send: none may appear in an error or the log.
  const std::vector<std::string>& secrets() const { return secrets_; }

  grpc::Status Stats(const std::string& path);
  // A context whose call fails DEADLINE_EXCEEDED after 30 s rather than hang the test.
  static std::unique_ptr<grpc::ClientContext> Context();
  static csi::v1::VolumeCapability Cap(const std::string& fs, bool read_only = false);

 private:
  void Bounds();
  void Utf8();
  void MountFlags();
  void Ids();
  void Secrets();
  void Codes();
  // Symlinks and directories under the kubelet dir (and beside it) that Paths() aims at.
  void MakePathTraps();
  void Paths();
  void Add(const std::string& klass, const std::string& name, grpc::StatusCode want,
           std::function<grpc::Status()> call);

  csi::v1::NodeStageVolumeRequest Stage(const std::string& volume_id) const;
  csi::v1::NodeStageVolumeRequest KrbdStage() const;
  csi::v1::CreateVolumeRequest Create(const std::string& name) const;
  grpc::Status Call(const csi::v1::NodeStageVolumeRequest& req);
  grpc::Status Call(const csi::v1::NodePublishVolumeRequest& req);
  grpc::Status Call(const csi::v1::CreateVolumeRequest& req);
  csi::v1::NodePublishVolumeRequest Publish(const std::string& target) const;

  Plugin* plugin_;
  std::string staged_, fresh_, staging_, target_, kubelet_;
  std::string outside_;  // a directory beside the kubelet dir
  std::vector<std::string> secrets_;
  std::vector<HostileCase> cases_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_DRIVER_HOSTILE_REQUESTS_H_
