// The fuse mapper against the live test cluster, with real rbd-fuse processes and loop devices
// (root). Every test maps its own image and leaves no process, mount or loop device behind.
#include "rbd/fuse_mapper.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <optional>
#include <rados/librados.hpp>
#include <rbd/librbd.hpp>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status.h"
#include "gtest/gtest.h"
#include "tests/ceph/cluster_bootstrap.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
namespace fs = std::filesystem;

class FuseMapperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::vector<std::string>> lines =
        ReadEnvFile(std::string(RBDCSI_CEPH_TEST_DIR) + "/env");
    ASSERT_THAT(lines, IsOk());
    for (const std::string& l : *lines) env_[l.substr(0, l.find('='))] = l.substr(l.find('=') + 1);
    ASSERT_EQ(rados_.init2("client.admin", "ceph", 0), 0);
    ASSERT_EQ(rados_.conf_read_file(env_["RBDCSI_CEPH_CONF"].c_str()), 0);
    ASSERT_EQ(rados_.connect(), 0);
    ASSERT_EQ(rados_.ioctx_create(env_["RBDCSI_CEPH_POOL"].c_str(), io_), 0);
    image_ = absl::StrCat(::testing::UnitTest::GetInstance()->current_test_info()->name(), "-",
                          getpid());
    int order = 22;
    ASSERT_EQ(rbd_.create2(io_, image_.c_str(), 64 << 20, RBD_FEATURE_LAYERING, &order), 0);
    mapper_ = std::make_unique<FuseMapper>(
        FuseMapperOptions{"rbd-fuse", dir_.path() + "/fuse", std::chrono::seconds(20)},
        NewRealLoopDevices());
  }

  void TearDown() override {
    // The test's own EXPECTs report leaks; this only makes sure nothing outlives the test.
    if (absl::StatusOr<std::vector<MappedDevice>> left = mapper_->List(); left.ok()) {
      for (const MappedDevice& d : *left) (void)mapper_->Unmap(d);
    }
    for (pid_t pid : RbdFuseProcesses()) kill(pid, SIGKILL);
    // A loop device holds the FUSE mount its file lives on: devices first, then mounts. The
    // attachments Map() made are checked by identity: once rbd-fuse is dead, the kernel
    // reports a backing path outside the test's directory.
    for (const auto& [dev, seq] : attachments_) {
      if (LoopAttachment(dev) != seq) continue;
      ADD_FAILURE() << dev << " leaked (attached as disk sequence number " << seq << ", backed by "
                    << LoopAttribute(dev, "backing_file") << ")";
      EXPECT_TRUE(DetachLoopAttachment(dev, seq));
    }
    for (const std::string& dev : LoopDevicesBackedUnder(dir_.path())) {
      ADD_FAILURE() << dev << " leaked";
      const std::string backing =
          ReadSmallFile(
              absl::StrCat("/sys/block/", dev.substr(dev.rfind('/') + 1), "/loop/backing_file"))
              .value_or("");
      DetachLoopDeviceBackedBy(dev, std::string(absl::StripTrailingAsciiWhitespace(backing)));
    }
    CleanUpUnder(dir_.path());
    // A killed rbd-fuse's watch lasts until the OSD times it out (5 s in the test cluster).
    int r = -EBUSY;
    WaitFor([&] { return (r = rbd_.remove(io_, image_.c_str())) != -EBUSY; },
            std::chrono::seconds(20));
    EXPECT_EQ(r, 0) << "could not remove test image " << image_;
  }

  // mapper_->Map(), remembering the loop device's attachment for TearDown's leak check.
  absl::StatusOr<MappedDevice> Map(const MapOptions& o) {
    absl::StatusOr<MappedDevice> dev = mapper_->Map(o);
    if (dev.ok()) attachments_.emplace_back(dev->path, LoopAttachment(dev->path));
    return dev;
  }

  // Maps the test's image, then kills its rbd-fuse and waits for it to be gone.
  void MapAndKillRbdFuse(std::optional<MappedDevice>* dev) {
    absl::StatusOr<MappedDevice> mapped = Map(Options());
    ASSERT_THAT(mapped, IsOk());
    *dev = *mapped;
    std::vector<pid_t> pids = RbdFuseProcesses();
    ASSERT_EQ(pids.size(), 1u);
    ASSERT_EQ(kill(pids[0], SIGKILL), 0);
    ASSERT_TRUE(WaitFor([&] { return RbdFuseProcesses().empty(); }, std::chrono::seconds(10)));
  }

  MapOptions Options() {
    absl::StatusOr<std::string> key = ReadSmallFile(env_["RBDCSI_CEPH_KEYFILE"]);
    MapOptions o;
    o.image = ImageSpec(env_["RBDCSI_CEPH_POOL"], image_);
    o.monitors = env_["RBDCSI_CEPH_MON"];
    o.user = env_["RBDCSI_CEPH_USER"];
    o.key = key.ok() ? std::string(absl::StripAsciiWhitespace(*key)) : "";
    return o;
  }

  // rbd-fuse processes serving a directory of this test.
  std::vector<pid_t> RbdFuseProcesses() const {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
      const std::string name = e.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      absl::StatusOr<std::string> cmd = ReadSmallFile(e.path() / "cmdline");
      absl::StatusOr<std::string> stat = ReadSmallFile(e.path() / "stat");
      if (cmd.ok() && stat.ok() && cmd->rfind("rbd-fuse", 0) == 0 &&
          cmd->find(dir_.path()) != std::string::npos && stat->find(") Z ") == std::string::npos) {
        out.push_back(std::stoi(name));
      }
    }
    return out;
  }

  size_t Watchers() {
    librbd::Image image;
    std::list<librbd::image_watcher_t> watchers;
    if (rbd_.open_read_only(io_, image, image_.c_str(), nullptr) != 0) return 99;
    image.list_watchers(watchers);
    return watchers.size();
  }

  std::map<std::string, std::string> env_;
  TempDir dir_{"fuse-mapper"};
  librados::Rados rados_;
  librados::IoCtx io_;
  librbd::RBD rbd_;
  std::string image_;
  std::unique_ptr<FuseMapper> mapper_;
  std::vector<std::pair<std::string, std::string>> attachments_;  // device, disk sequence number
};

TEST_F(FuseMapperTest, MapWriteUnmapLeavesNothingBehind) {
  absl::StatusOr<MappedDevice> dev = Map(Options());
  ASSERT_THAT(dev, IsOk());
  EXPECT_EQ(dev->image, Options().image);
  EXPECT_EQ(Watchers(), 1u);  // rbd-fuse's
  EXPECT_EQ(RbdFuseProcesses().size(), 1u);
  // The key file is gone once rbd-fuse has connected.
  for (const auto& e : fs::directory_iterator(dir_.path() + "/fuse")) {
    EXPECT_FALSE(fs::exists(e.path() / "key"));
  }
  {
    const int fd = open(dev->path.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "through fuse", 12, 0), 12);
    ASSERT_EQ(fsync(fd), 0);
    close(fd);
  }
  absl::StatusOr<std::vector<MappedDevice>> listed = mapper_->List();
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0], *dev);

  ASSERT_THAT(mapper_->Unmap(*dev), IsOk());
  EXPECT_THAT(*mapper_->List(), IsEmpty());
  EXPECT_THAT(RbdFuseProcesses(), IsEmpty());
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/fuse"));
  EXPECT_EQ(Watchers(), 0u);
  librbd::Image image;
  ASSERT_EQ(rbd_.open_read_only(io_, image, image_.c_str(), nullptr), 0);
  librados::bufferlist bl;
  image.read(0, 12, bl);
  EXPECT_EQ(bl.to_str(), "through fuse");
  EXPECT_THAT(mapper_->Unmap(*dev), IsOk());  // idempotent
}

TEST_F(FuseMapperTest, AHeldDeviceIsRefusedAndStaysMapped) {
  absl::StatusOr<MappedDevice> dev = Map(Options());
  ASSERT_THAT(dev, IsOk());
  const int fd = open(dev->path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  absl::Status busy = mapper_->Unmap(*dev);
  EXPECT_TRUE(IsBusy(busy)) << busy;
  EXPECT_EQ(mapper_->List()->size(), 1u);
  EXPECT_EQ(RbdFuseProcesses().size(), 1u);
  close(fd);
  EXPECT_THAT(mapper_->Unmap(*dev), IsOk());
  EXPECT_THAT(RbdFuseProcesses(), IsEmpty());
}

TEST_F(FuseMapperTest, ADeadRbdFuseDropsOutOfTheListAndUnmapCleansUp) {
  std::optional<MappedDevice> dev;
  ASSERT_NO_FATAL_FAILURE(MapAndKillRbdFuse(&dev));
  EXPECT_THAT(*mapper_->List(), IsEmpty());
  EXPECT_THAT(mapper_->Unmap(*dev), IsOk());
  EXPECT_NE(LoopAttachment(dev->path), attachments_.back().second) << dev->path << " leaked";
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/fuse"));
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
}

// A dead rbd-fuse leaves a FUSE mount that answers ENOTCONN, which someone else may detach
// (`fusermount -uz`, as for any dead FUSE mount). The kernel then reports the loop device's
// backing file as "/IMAGE (deleted)", outside the mapper's directory: Unmap still detaches
// exactly the device it attached (by its disk sequence number), and cleans up.
TEST_F(FuseMapperTest, ADeadRbdFuseWhoseMountWasDetachedStillHasItsDeviceDetached) {
  std::optional<MappedDevice> dev;
  ASSERT_NO_FATAL_FAILURE(MapAndKillRbdFuse(&dev));
  const std::vector<std::string> mounts = MountsUnder(dir_.path());
  ASSERT_EQ(mounts.size(), 1u);
  ASSERT_EQ(umount2(mounts[0].c_str(), MNT_DETACH), 0);  // the "someone else" of this test
  ASSERT_THAT(LoopAttribute(dev->path, "backing_file"), Not(HasSubstr(dir_.path())));

  EXPECT_THAT(mapper_->Unmap(*dev), IsOk());
  EXPECT_NE(LoopAttachment(dev->path), attachments_.back().second) << dev->path << " leaked";
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/fuse"));
}

TEST_F(FuseMapperTest, UnmapStopsAnRbdFuseLeftWithoutItsDevice) {
  absl::StatusOr<MappedDevice> dev = Map(Options());
  ASSERT_THAT(dev, IsOk());
  // As if an earlier unmap detached the device and then failed.
  std::vector<std::string> devices = LoopDevicesBackedUnder(dir_.path());
  ASSERT_EQ(devices.size(), 1u);
  const std::string backing =
      ReadSmallFile(absl::StrCat("/sys/block/", devices[0].substr(5), "/loop/backing_file"))
          .value_or("");
  ASSERT_TRUE(DetachLoopDeviceBackedBy(devices[0],
                                       std::string(absl::StripTrailingAsciiWhitespace(backing))));
  EXPECT_EQ(RbdFuseProcesses().size(), 1u);
  EXPECT_THAT(mapper_->Unmap(*dev), IsOk());
  EXPECT_THAT(RbdFuseProcesses(), IsEmpty());
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/fuse"));
  EXPECT_EQ(Watchers(), 0u);
}

TEST_F(FuseMapperTest, AMissingImageIsNotFoundAndNothingStays) {
  MapOptions o = Options();
  o.image.image = "no-such-image";
  EXPECT_THAT(Map(o), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(RbdFuseProcesses(), IsEmpty());
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/fuse"));
}

TEST_F(FuseMapperTest, RefreshCapacityShowsTheGrownImage) {
  absl::StatusOr<MappedDevice> dev = Map(Options());
  ASSERT_THAT(dev, IsOk());
  {
    librbd::Image image;
    ASSERT_EQ(rbd_.open(io_, image, image_.c_str()), 0);
    ASSERT_EQ(image.resize(128 << 20), 0);
  }
  ASSERT_THAT(mapper_->RefreshCapacity(*dev), IsOk());
  const int fd = open(dev->path.c_str(), O_RDONLY | O_CLOEXEC);
  uint64_t size = 0;
  ASSERT_EQ(ioctl(fd, BLKGETSIZE64, &size), 0);
  close(fd);
  EXPECT_EQ(size, 128u << 20);
  EXPECT_THAT(mapper_->Unmap(*dev), IsOk());
}

}  // namespace
}  // namespace rbdcsi
