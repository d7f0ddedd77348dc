// The whole node lifecycle over the real socket on real loop devices (root only).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Mode = csi::v1::VolumeCapability::AccessMode;

class NodeLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plugin_ = std::make_unique<Plugin>(RBDCSI_BINARY, dir_.path());
    std::string why;
    ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
    // kubelet creates the staging directory's parents; the target's parent too.
    std::filesystem::create_directories(staging());
    std::filesystem::create_directories(std::filesystem::path(target()).parent_path());
  }

  void TearDown() override {
    const int code = plugin_->Stop();
    EXPECT_EQ(code, 0) << plugin_->Stderr();
    // Nothing of this test may remain, whatever happened.
    EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
    EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
    CleanUpUnder(dir_.path());
  }

  static csi::v1::VolumeCapability Cap(const std::string& fs,
                                       Mode::Mode mode = Mode::SINGLE_NODE_WRITER) {
    csi::v1::VolumeCapability cap;
    if (fs == "block") {
      cap.mutable_block();
    } else {
      cap.mutable_mount()->set_fs_type(fs);
    }
    cap.mutable_access_mode()->set_mode(mode);
    return cap;
  }

  csi::v1::Volume CreateVolume(const std::string& name, int64_t size, const std::string& fs) {
    csi::v1::CreateVolumeRequest req;
    req.set_name(name);
    req.mutable_capacity_range()->set_required_bytes(size);
    *req.add_volume_capabilities() = Cap(fs);
    csi::v1::CreateVolumeResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = plugin_->controller().CreateVolume(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.volume();
  }

  grpc::Status Stage(const csi::v1::Volume& vol, const csi::v1::VolumeCapability& cap) {
    csi::v1::NodeStageVolumeRequest req;
    req.set_volume_id(vol.volume_id());
    req.set_staging_target_path(staging());
    *req.mutable_volume_capability() = cap;
    *req.mutable_volume_context() = vol.volume_context();
    csi::v1::NodeStageVolumeResponse resp;
    grpc::ClientContext ctx;
    return plugin_->node().NodeStageVolume(&ctx, req, &resp);
  }

  grpc::Status Unstage(const std::string& volume_id) {
    csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id(volume_id);
    req.set_staging_target_path(staging());
    csi::v1::NodeUnstageVolumeResponse resp;
    grpc::ClientContext ctx;
    return plugin_->node().NodeUnstageVolume(&ctx, req, &resp);
  }

  grpc::Status Publish(const std::string& volume_id, const csi::v1::VolumeCapability& cap,
                       bool read_only) {
    csi::v1::NodePublishVolumeRequest req;
    req.set_volume_id(volume_id);
    req.set_staging_target_path(staging());
    req.set_target_path(target());
    req.set_readonly(read_only);
    *req.mutable_volume_capability() = cap;
    csi::v1::NodePublishVolumeResponse resp;
    grpc::ClientContext ctx;
    return plugin_->node().NodePublishVolume(&ctx, req, &resp);
  }

  grpc::Status Unpublish(const std::string& volume_id) {
    csi::v1::NodeUnpublishVolumeRequest req;
    req.set_volume_id(volume_id);
    req.set_target_path(target());
    csi::v1::NodeUnpublishVolumeResponse resp;
    grpc::ClientContext ctx;
    return plugin_->node().NodeUnpublishVolume(&ctx, req, &resp);
  }

  grpc::Status Delete(const std::string& volume_id) {
    csi::v1::DeleteVolumeRequest req;
    req.set_volume_id(volume_id);
    csi::v1::DeleteVolumeResponse resp;
    grpc::ClientContext ctx;
    return plugin_->controller().DeleteVolume(&ctx, req, &resp);
  }

  std::string staging() const { return dir_ / "kubelet/plugins/globalmount"; }
  std::string target() const { return dir_ / "kubelet/pods/p1/volumes/vol"; }

  // Creates, stages, publishes, writes, reads back, unpublishes, unstages and deletes.
  void Lifecycle(const std::string& fs, int64_t size) {
    csi::v1::Volume vol = CreateVolume("vol-" + fs, size, fs);
    grpc::Status st = Stage(vol, Cap(fs));
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(LoopDevicesBackedUnder(dir_.path()).size(), 1u);
    st = Publish(vol.volume_id(), Cap(fs), false);
    ASSERT_TRUE(st.ok()) << st.error_message();
    const std::string payload = "written through " + fs;
    if (fs == "block") {
      int fd = open(target().c_str(), O_RDWR | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(pwrite(fd, payload.data(), payload.size(), 4096),
                static_cast<ssize_t>(payload.size()));
      fsync(fd);
      close(fd);
      std::string back(payload.size(), '\0');
      fd = open(LoopDevicesBackedUnder(dir_.path())[0].c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_EQ(pread(fd, back.data(), back.size(), 4096), static_cast<ssize_t>(back.size()));
      close(fd);
      EXPECT_EQ(back, payload);
    } else {
      std::ofstream(target() + "/hello") << payload;
      EXPECT_EQ(ReadFileOrEmpty(staging() + "/hello"), payload);
      csi::v1::NodeGetVolumeStatsRequest req;
      req.set_volume_id(vol.volume_id());
      req.set_volume_path(target());
      csi::v1::NodeGetVolumeStatsResponse resp;
      grpc::ClientContext ctx;
      ASSERT_TRUE(plugin_->node().NodeGetVolumeStats(&ctx, req, &resp).ok());
      ASSERT_GE(resp.usage_size(), 2);
      EXPECT_GT(resp.usage(0).total(), size / 2);
      EXPECT_FALSE(resp.volume_condition().abnormal());
    }
    st = Unpublish(vol.volume_id());
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(std::filesystem::exists(target()));
    st = Unstage(vol.volume_id());
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
    EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
    EXPECT_TRUE(std::filesystem::is_empty(plugin_->state_dir() + "/volumes"));
    st = Delete(vol.volume_id());
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  TempDir dir_{"lifecycle"};
  std::unique_ptr<Plugin> plugin_;
};

TEST_F(NodeLifecycleTest, Ext4) { Lifecycle("ext4", 64 << 20); }
TEST_F(NodeLifecycleTest, Xfs) { Lifecycle("xfs", 512 << 20); }
TEST_F(NodeLifecycleTest, Block) { Lifecycle("block", 16 << 20); }

TEST_F(NodeLifecycleTest, ReadOnlyPublishRefusesWrites) {
  csi::v1::Volume vol = CreateVolume("vol-ro", 64 << 20, "ext4");
  ASSERT_TRUE(Stage(vol, Cap("ext4")).ok());
  grpc::Status st = Publish(vol.volume_id(), Cap("ext4"), /*read_only=*/true);
  ASSERT_TRUE(st.ok()) << st.error_message();
  int fd = open((target() + "/nope").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, EROFS);
  if (fd >= 0) close(fd);
  ASSERT_TRUE(Unpublish(vol.volume_id()).ok());
  ASSERT_TRUE(Unstage(vol.volume_id()).ok());
  ASSERT_TRUE(Delete(vol.volume_id()).ok());
}

TEST_F(NodeLifecycleTest, EveryRpcRepeatedTenTimesGivesTheSameAnswer) {
  csi::v1::Volume vol = CreateVolume("vol-10x", 64 << 20, "ext4");
  for (int i = 0; i < 10; ++i) {
    csi::v1::Volume again = CreateVolume("vol-10x", 64 << 20, "ext4");
    EXPECT_EQ(again.volume_id(), vol.volume_id());
  }
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Stage(vol, Cap("ext4")).ok()) << i;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Publish(vol.volume_id(), Cap("ext4"), false).ok()) << i;
  EXPECT_EQ(LoopDevicesBackedUnder(dir_.path()).size(), 1u);
  EXPECT_EQ(MountsUnder(dir_.path()).size(), 2u);  // staging + one publish
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Unpublish(vol.volume_id()).ok()) << i;
  for (int i = 0; i < 10; ++i) {
    grpc::Status st = Unstage(vol.volume_id());
    ASSERT_TRUE(st.ok()) << i << ": " << st.error_message();
  }
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Delete(vol.volume_id()).ok()) << i;
}

TEST_F(NodeLifecycleTest, ConcurrentStagesOfOneVolumeNeverRunTogether) {
  csi::v1::Volume vol = CreateVolume("vol-race", 64 << 20, "ext4");
  constexpr int kCallers = 8;
  std::vector<grpc::StatusCode> codes(kCallers);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      ready++;
      while (ready.load() < kCallers) {
      }
      codes[i] = Stage(vol, Cap("ext4")).error_code();
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0;
  for (grpc::StatusCode code : codes) {
    EXPECT_TRUE(code == grpc::StatusCode::OK || code == grpc::StatusCode::ABORTED) << code;
    ok += code == grpc::StatusCode::OK;
  }
  EXPECT_GE(ok, 1);
  // Whatever interleaving happened, exactly one device and one mount exist.
  EXPECT_EQ(LoopDevicesBackedUnder(dir_.path()).size(), 1u);
  EXPECT_EQ(MountsUnder(dir_.path()).size(), 1u);
  ASSERT_TRUE(Unstage(vol.volume_id()).ok());
  ASSERT_TRUE(Delete(vol.volume_id()).ok());
}

// The seed incident on a real device: a process holds the device, so the first unstage
// unmounts but cannot unmap; kubelet deletes the staging directory; the holder goes away; the
// second unstage still finds the device through the record and unmaps it.
TEST_F(NodeLifecycleTest, LeakScenarioRetryUnmapsAfterTheStagingPathIsGone) {
  csi::v1::Volume vol = CreateVolume("vol-leak", 64 << 20, "ext4");
  ASSERT_TRUE(Stage(vol, Cap("ext4")).ok());
  std::vector<std::string> devices = LoopDevicesBackedUnder(dir_.path());
  ASSERT_EQ(devices.size(), 1u);
  const std::string backing = LoopAttribute(devices[0], "backing_file");
  ASSERT_TRUE(absl::StartsWith(backing, dir_.path() + "/")) << backing;
  int holder = open(devices[0].c_str(), O_RDONLY | O_CLOEXEC);  // like a stray reader
  ASSERT_GE(holder, 0);

  grpc::Status st = Unstage(vol.volume_id());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("is still in use and was not unmapped"));
  EXPECT_THAT(st.error_message(), HasSubstr(devices[0]));
  EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
  // Not detached lazily: a device with autoclear set stays listed exactly as long as the
  // holder's descriptor is open, so the listing alone proves nothing; the flag must be clear.
  EXPECT_EQ(LoopDevicesBackedUnder(dir_.path()), devices);
  EXPECT_EQ(LoopAttribute(devices[0], "autoclear"), "0");

  std::filesystem::remove_all(staging());
  close(holder);
  // The holder is gone: a lazy detach would have happened now. The device must still be there,
  // backed by this test's file, for the retry to unmap.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(LoopAttribute(devices[0], "backing_file"), backing) << "detached on the last close";
  EXPECT_EQ(LoopAttribute(devices[0], "autoclear"), "0");
  st = Unstage(vol.volume_id());
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
  EXPECT_TRUE(std::filesystem::is_empty(plugin_->state_dir() + "/volumes"));
  ASSERT_TRUE(Delete(vol.volume_id()).ok());
}

// xfs: growing a mounted ext4 needs CAP_SYS_RESOURCE, which this sandbox does not grant.
TEST_F(NodeLifecycleTest, ExpandGrowsTheMountedFilesystem) {
  csi::v1::Volume vol = CreateVolume("vol-grow", 512 << 20, "xfs");
  ASSERT_TRUE(Stage(vol, Cap("xfs")).ok());
  ASSERT_TRUE(Publish(vol.volume_id(), Cap("xfs"), false).ok());
  csi::v1::ControllerExpandVolumeRequest creq;
  creq.set_volume_id(vol.volume_id());
  creq.mutable_capacity_range()->set_required_bytes(1024 << 20);
  csi::v1::ControllerExpandVolumeResponse cresp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(plugin_->controller().ControllerExpandVolume(&ctx, creq, &cresp).ok());
  }
  csi::v1::NodeExpandVolumeRequest nreq;
  nreq.set_volume_id(vol.volume_id());
  nreq.set_volume_path(target());
  nreq.mutable_capacity_range()->set_required_bytes(1024 << 20);
  csi::v1::NodeExpandVolumeResponse nresp;
  {
    grpc::ClientContext ctx;
    grpc::Status st = plugin_->node().NodeExpandVolume(&ctx, nreq, &nresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_EQ(nresp.capacity_bytes(), 1024 << 20);
  struct statvfs vfs {};
  ASSERT_EQ(statvfs(target().c_str(), &vfs), 0);
  EXPECT_GT(vfs.f_blocks * vfs.f_frsize, 900ULL << 20);
  ASSERT_TRUE(Unpublish(vol.volume_id()).ok());
  ASSERT_TRUE(Unstage(vol.volume_id()).ok());
  ASSERT_TRUE(Delete(vol.volume_id()).ok());
}

}  // namespace
}  // namespace rbdcsi
