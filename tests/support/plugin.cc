#include "tests/support/plugin.h"

#include <signal.h>
#include <sys/mount.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"

namespace rbdcsi {

Plugin::Plugin(const std::string& binary, const std::string& dir,
               const std::vector<std::string>& extra_flags)
    : dir_(dir) {
  std::vector<std::string> argv = {
      binary,        "serve",     "--endpoint", "unix://" + socket(), "--nodeid",       "test-node",
      "--state-dir", state_dir(), "--data-dir", data_dir(),           "--grace-period", "5"};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  if (std::find(extra_flags.begin(), extra_flags.end(), "--kubelet-dir") == extra_flags.end()) {
    // Staging and target paths must lie under the kubelet directory: by default DIR/kubelet.
    std::filesystem::create_directories(kubelet_dir());
    argv.insert(argv.end(), {"--kubelet-dir", kubelet_dir()});
  }
  child_ = std::make_unique<ChildProcess>(argv, dir_);
  channel_ = grpc::CreateChannel("unix:" + socket(), grpc::InsecureChannelCredentials());
  identity_ = csi::v1::Identity::NewStub(channel_);
  node_ = csi::v1::Node::NewStub(channel_);
  controller_ = csi::v1::Controller::NewStub(channel_);
}

Plugin::~Plugin() { Stop(); }

bool Plugin::WaitReady(std::string* why) {
  bool ready = WaitFor(
      [&] {
        if (!std::filesystem::exists(socket())) return false;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
        csi::v1::ProbeResponse resp;
        return identity_->Probe(&ctx, {}, &resp).ok() && resp.ready().value();
      },
      std::chrono::seconds(20));
  if (!ready && why != nullptr) *why = child_->Stderr();
  return ready;
}

int Plugin::Stop() {
  child_->Signal(SIGTERM);
  std::optional<int> code = child_->Wait(std::chrono::seconds(20));
  return code ? *code : -1;
}

void Plugin::Kill() {
  child_->Signal(SIGKILL);
  child_->Wait(std::chrono::seconds(20));
}

namespace {

// Unmounts what is mounted under `dir`, innermost first, in up to `passes` rounds; with `lazy`,
// what stays busy after half of them is detached lazily (test cleanup only).
void UnmountUnder(const std::string& dir, int passes, bool lazy) {
  for (int i = 0; i < passes; ++i) {
    std::vector<std::string> mounts = MountsUnder(dir);
    if (mounts.empty()) return;
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
      if (umount2(it->c_str(), 0) == 0) {
        std::cerr << "CleanUpUnder: unmounted leaked " << *it << std::endl;
      } else if (errno == EBUSY && lazy && i >= passes / 2) {
        std::cerr << "CleanUpUnder: " << *it << " is busy, unmounting it lazily" << std::endl;
        umount2(it->c_str(), MNT_DETACH);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void DetachLoopDevicesUnder(const std::string& dir) {
  for (const std::string& dev : LoopDevicesBackedUnder(dir)) {
    const std::string backing = LoopAttribute(dev, "backing_file");
    if (!absl::StartsWith(backing, dir + "/")) continue;  // detached or re-used meanwhile
    const bool detached = DetachLoopDeviceBackedBy(dev, backing);
    std::cerr << "CleanUpUnder: " << dev << " (" << backing << ") leaked; "
              << (detached ? "detached" : "still open elsewhere, left to detach on last close")
              << std::endl;
  }
}

}  // namespace

void CleanUpUnder(const std::string& dir) {
  // Normal unmounts first. Loop devices are detached while their backing files are still
  // reachable under `dir`: a lazy unmount of a FUSE mount (rbd-fuse) holding such a file would
  // hide it, leaking both the device and the FUSE daemon. Only then lazily what stays busy (a
  // leak the test has reported); a FUSE daemon exits once its mount is gone.
  UnmountUnder(dir, 5, /*lazy=*/false);
  DetachLoopDevicesUnder(dir);
  UnmountUnder(dir, 10, /*lazy=*/true);
  DetachLoopDevicesUnder(dir);
}

absl::StatusOr<std::string> CreateAndStage(Plugin& plugin, const std::string& name,
                                           const std::string& staging) {
  csi::v1::VolumeCapability cap;
  cap.mutable_mount()->set_fs_type("ext4");
  cap.mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  csi::v1::CreateVolumeRequest create;
  create.set_name(name);
  create.mutable_capacity_range()->set_required_bytes(32 << 20);
  *create.add_volume_capabilities() = cap;
  csi::v1::CreateVolumeResponse created;
  {
    grpc::ClientContext ctx;
    grpc::Status st = plugin.controller().CreateVolume(&ctx, create, &created);
    if (!st.ok()) return absl::InternalError("CreateVolume: " + st.error_message());
  }
  std::filesystem::create_directories(staging);
  csi::v1::NodeStageVolumeRequest stage;
  stage.set_volume_id(created.volume().volume_id());
  stage.set_staging_target_path(staging);
  *stage.mutable_volume_capability() = cap;
  csi::v1::NodeStageVolumeResponse staged;
  grpc::ClientContext ctx;
  grpc::Status st = plugin.node().NodeStageVolume(&ctx, stage, &staged);
  if (!st.ok()) return absl::InternalError("NodeStageVolume: " + st.error_message());
  return created.volume().volume_id();
}

grpc::Status Unstage(Plugin& plugin, const std::string& volume_id, const std::string& staging) {
  csi::v1::NodeUnstageVolumeRequest req;
  req.set_volume_id(volume_id);
  req.set_staging_target_path(staging);
  csi::v1::NodeUnstageVolumeResponse resp;
  grpc::ClientContext ctx;
  return plugin.node().NodeUnstageVolume(&ctx, req, &resp);
}

}  // namespace rbdcsi
