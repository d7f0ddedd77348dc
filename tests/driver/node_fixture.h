// The NodeOps fixture shared by the node's unit tests: stateful fakes, a loop and a krbd mapper.
#ifndef RBDCSI_TESTS_DRIVER_NODE_FIXTURE_H_
#define RBDCSI_TESTS_DRIVER_NODE_FIXTURE_H_

#include <filesystem>
#include <memory>
#include <string>

#include "driver/node.h"
#include "driver/testing/scripted_busy_handler.h"
#include "gtest/gtest.h"
#include "mounter/testing/fake_mounter.h"
#include "rbd/mapper_registry.h"
#include "rbd/testing/fake_mapper.h"
#include "tests/support/test_support.h"

namespace rbdcsi {

// NodeOps of node "node-1" over `deps`, with `kubelet_dir` as --kubelet-dir and the records'
// directory protected, as serve has it.
inline std::unique_ptr<NodeOps> NewNodeOpsForTest(const std::string& kubelet_dir,
                                                  const NodeDeps& deps) {
  NodeConfig config;
  config.node_id = "node-1";
  config.paths.kubelet_dir = kubelet_dir;
  config.paths.protected_dirs = {deps.records->dir()};
  return std::make_unique<NodeOps>(config, deps);
}

class NodeOpsTest : public ::testing::Test {
 protected:
  NodeOpsTest()
      : mounter_(&log_, &script_),
        loop_("loop", &log_, &script_, mounter_.DeviceAdder()),
        krbd_("krbd", &log_, &script_, mounter_.DeviceAdder()),
        filesystems_(&log_, &script_),
        records_(dir_ / "records"),
        busy_(&log_) {
    std::filesystem::create_directories(records_.dir());
    loop_.AddImage("rbd/img1");
    krbd_.AddImage("pool2/img2");
    krbd_.set_traits({{"monitors"}, {"userID", "userKey"}, true, /*ceph_images=*/true});
    EXPECT_THAT(mappers_.AddUnowned(&loop_), IsOk());
    EXPECT_THAT(mappers_.AddUnowned(&krbd_), IsOk());
    ops_ = NewNodeOpsForTest(dir_.path(), {&mounter_, &filesystems_, &mappers_, &records_, &locks_,
                                           &busy_, nullptr, env_.get()});
  }

  std::string staging() const { return dir_ / "staging"; }

  csi::v1::NodeStageVolumeRequest StageRequest(const std::string& fs = "ext4") const {
    csi::v1::NodeStageVolumeRequest req;
    req.set_volume_id("rbd/img1");
    req.set_staging_target_path(staging());
    auto* cap = req.mutable_volume_capability();
    cap->mutable_mount()->set_fs_type(fs);
    cap->mutable_mount()->add_mount_flags("noatime");
    cap->mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    (*req.mutable_volume_context())["mapper"] = "loop";
    return req;
  }

  // A static krbd volume: pool2/img2 of the cluster at `monitors`, with its secrets.
  csi::v1::NodeStageVolumeRequest KrbdStageRequest(const std::string& volume_id,
                                                   const std::string& monitors) const {
    csi::v1::NodeStageVolumeRequest req = StageRequest();
    req.set_volume_id(volume_id);
    auto& ctx = *req.mutable_volume_context();
    ctx["mapper"] = "krbd";
    ctx["pool"] = "pool2";
    ctx["image"] = "img2";
    ctx["monitors"] = monitors;
    (*req.mutable_secrets())["userID"] = "kube";
    (*req.mutable_secrets())["userKey"] = "AQBs3cr3tKey==";
    return req;
  }

  csi::v1::NodeUnstageVolumeRequest UnstageRequest() const {
    csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id("rbd/img1");
    req.set_staging_target_path(staging());
    return req;
  }

  bool HasRecord() { return records_.Load("rbd/img1").value().has_value(); }
  StageStep RecordStep() { return records_.Load("rbd/img1").value()->step; }

  TempDir dir_{"node"};
  ActionLog log_;
  FailureScript script_;
  FakeMounter mounter_;
  FakeMapper loop_;
  FakeMapper krbd_;
  MapperRegistry mappers_;
  FakeFilesystems filesystems_;
  RecordStore records_;
  VolumeLocks locks_;
  ScriptedBusyHandler busy_;
  std::unique_ptr<HostEnv> env_ = NewRealHostEnv();
  std::unique_ptr<NodeOps> ops_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_DRIVER_NODE_FIXTURE_H_
