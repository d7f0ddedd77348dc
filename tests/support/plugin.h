// Starts the real rbdcsi binary on a temporary socket with its own state and data directories,
// and gives typed CSI stubs to talk to it.
#ifndef RBDCSI_TESTS_SUPPORT_PLUGIN_H_
#define RBDCSI_TESTS_SUPPORT_PLUGIN_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "csi.grpc.pb.h"
#include "tests/support/test_support.h"

namespace rbdcsi {

class Plugin {
 public:
  // `dir` holds the socket, state, data and the server's output; serve's --kubelet-dir is
  // DIR/kubelet (made here) unless `extra_flags` name one.
  Plugin(const std::string& binary, const std::string& dir,
         const std::vector<std::string>& extra_flags = {});
  ~Plugin();

  // Waits until Probe answers; false (with the server's stderr in `why`) otherwise.
  bool WaitReady(std::string* why);

  std::string socket() const { return dir_ + "/csi.sock"; }
  std::string state_dir() const { return dir_ + "/state"; }
  std::string data_dir() const { return dir_ + "/data"; }
  std::string kubelet_dir() const { return dir_ + "/kubelet"; }
  std::string Stderr() const { return child_->Stderr(); }

  csi::v1::Identity::Stub& identity() { return *identity_; }
  csi::v1::Node::Stub& node() { return *node_; }
  csi::v1::Controller::Stub& controller() { return *controller_; }

  // Stops the server with SIGTERM and returns its exit code (or -1 on timeout).
  int Stop();
  // SIGKILLs the server (a crash) and reaps it.
  void Kill();
  pid_t pid() const { return child_->pid(); }

 private:
  std::string dir_;
  std::unique_ptr<ChildProcess> child_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<csi::v1::Identity::Stub> identity_;
  std::unique_ptr<csi::v1::Node::Stub> node_;
  std::unique_ptr<csi::v1::Controller::Stub> controller_;
};

// The last resort after a test's own EXPECTs (LoopDevicesBackedUnder / MountsUnder in
// test_support.h, which report a leak): unmounts what is still mounted under `dir` (normally,
// and lazily only if that fails) and detaches the loop devices whose backing file lies under
// `dir`, each only while it is still attached to that same file (DetachLoopDeviceBackedBy). A
// device still held open stays attached with autoclear set. Says on stderr what it had to do.
void CleanUpUnder(const std::string& dir);

// Creates a 32 MiB volume `name` through `plugin`'s controller and stages it as ext4 for a
// single-node writer at `staging` (created if missing). Returns its volume id, or what failed.
absl::StatusOr<std::string> CreateAndStage(Plugin& plugin, const std::string& name,
                                           const std::string& staging);

// NodeUnstageVolume of `volume_id` at `staging`.
grpc::Status Unstage(Plugin& plugin, const std::string& volume_id, const std::string& staging);

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_SUPPORT_PLUGIN_H_
