// Integration tests on real loop devices (root, /dev/loop-control). Each test detaches only the
// devices it attached, always naming the backing file, so a device number re-used by another
// process on the machine is never touched.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/command.h"
#include "base/file_util.h"
#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rbd/krbd_mapper.h"
#include "rbd/loop_device.h"
#include "rbd/loop_mapper.h"
#include "tests/rbd/loop_privileged_fixture.h"
#include "tests/rbd/printers.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TEST_F(LoopPrivilegedTest, AttachListDetach) {
  const std::string file = dir_ / "a.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_THAT(dev, StartsWith("/dev/loop"));

  std::optional<LoopInfo> info = Find(dev);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->backing_file, CanonicalPath(file));
  EXPECT_EQ(info->major, 7u);
  EXPECT_FALSE(info->read_only);
  EXPECT_FALSE(info->autoclear);
  EXPECT_EQ(SysfsAttr(dev, "size"), "2048");
  EXPECT_THAT(loops_->IsFree(dev), IsOk());
  EXPECT_TRUE(*loops_->IsFree(dev));
  absl::StatusOr<LoopInfo> one = loops_->Get(dev);  // the same facts for one device
  ASSERT_THAT(one, IsOk());
  EXPECT_EQ(one->backing_file, info->backing_file);
  EXPECT_EQ(std::make_pair(one->major, one->minor), std::make_pair(info->major, info->minor));

  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
  EXPECT_FALSE(Find(dev).has_value());
  EXPECT_THAT(loops_->Get(dev), StatusIs(absl::StatusCode::kNotFound, HasSubstr("loop")));
  EXPECT_THAT(loops_->Get("/dev/sda"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not a loop")));
  // Again: OK, and (naming the file) harmless even if someone re-used the number meanwhile.
  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
}

TEST_F(LoopPrivilegedTest, ReadOnlyAttach) {
  const std::string file = dir_ / "ro.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file, /*read_only=*/true);
  ASSERT_FALSE(dev.empty());
  std::optional<LoopInfo> info = Find(dev);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->read_only);
  EXPECT_EQ(SysfsAttr(dev, "ro"), "1");
  const int fd = open(dev.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {  // recent kernels allow the open and refuse the write
    const char block[512] = {};
    EXPECT_LT(write(fd, block, sizeof(block)), 0);
    close(fd);
  }
}

TEST_F(LoopPrivilegedTest, AttachOfMissingFileIsNotFound) {
  EXPECT_THAT(loops_->Attach(dir_ / "missing.img", false),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.img")));
}

TEST_F(LoopPrivilegedTest, DetachWhileOpenElsewhereIsBusyAndNotLazy) {
  const std::string file = dir_ / "held.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  Holder& holder = Hold(dev, /*exclusive=*/false);

  absl::Status status = loops_->Detach(dev, file);
  EXPECT_TRUE(IsBusy(status)) << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition,
                               AllOf(HasSubstr(dev), HasSubstr("another process has it open"))));
  std::optional<LoopInfo> info = Find(dev);
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->autoclear) << "the kernel's deferred detach was not cancelled";

  // Had the detach been left pending, this release would detach the device.
  holder.Release();
  ASSERT_TRUE(Find(dev).has_value());
  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
  EXPECT_FALSE(Find(dev).has_value());
}

TEST_F(LoopPrivilegedTest, DetachWhileHeldExclusivelyIsBusy) {
  const std::string file = dir_ / "mounted.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  Holder& holder = Hold(dev, /*exclusive=*/true);

  EXPECT_FALSE(*loops_->IsFree(dev));
  absl::Status status = loops_->Detach(dev, file);
  EXPECT_TRUE(IsBusy(status)) << status;
  EXPECT_TRUE(Find(dev).has_value());

  holder.Release();
  EXPECT_TRUE(*loops_->IsFree(dev));
  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
  EXPECT_FALSE(Find(dev).has_value());
}

TEST_F(LoopPrivilegedTest, DetachLeavesDevicesOfOtherFilesAlone) {
  const std::string file = dir_ / "mine.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  EXPECT_THAT(loops_->Detach(dev, dir_ / "other.img"), IsOk());
  EXPECT_TRUE(Find(dev).has_value());
  EXPECT_THAT(loops_->Detach(dir_ / "no-such-device", ""), IsOk());
}

TEST_F(LoopPrivilegedTest, DetachFindsTheDeviceOfADeletedFile) {
  const std::string file = dir_ / "deleted.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  ASSERT_EQ(unlink(file.c_str()), 0);
  std::optional<LoopInfo> info = Find(dev);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->backing_deleted);
  EXPECT_EQ(info->backing_file, CanonicalPath(file));
  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
  EXPECT_FALSE(Find(dev).has_value());
}

TEST_F(LoopPrivilegedTest, SetCapacityFollowsTheFile) {
  const std::string file = dir_ / "grow.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  ASSERT_EQ(truncate(file.c_str(), 4 << 20), 0);
  EXPECT_EQ(SysfsAttr(dev, "size"), "2048");
  EXPECT_THAT(loops_->SetCapacity(dev), IsOk());
  EXPECT_EQ(SysfsAttr(dev, "size"), "8192");
}

TEST_F(LoopPrivilegedTest, LoopMapperEndToEnd) {
  LoopImageStore store(dir_ / "data");
  LoopMapper mapper(store, NewRealLoopDevices());
  ASSERT_THAT(store.Create({"pool", "vol"}, 3 << 20), IsOk());
  MapOptions options;
  options.image = {"pool", "vol"};
  absl::StatusOr<MappedDevice> device = mapper.Map(options);
  ASSERT_THAT(device, IsOk());
  attached_.emplace_back(device->path, store.PathOf(options.image));
  EXPECT_EQ(device->major, 7u);
  struct stat st;
  ASSERT_EQ(stat(device->path.c_str(), &st), 0);
  EXPECT_EQ(minor(st.st_rdev), device->minor);

  // Devices of other files (here one of this test's own) are never listed.
  MakeSparseFile(dir_ / "foreign.img", 1 << 20);
  const std::string foreign = Attach(dir_ / "foreign.img");
  absl::StatusOr<std::vector<MappedDevice>> list = mapper.List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, Contains(*device));
  EXPECT_THAT(*list, Not(Contains(Field(&MappedDevice::path, foreign))));

  ASSERT_THAT(store.Resize({"pool", "vol"}, 5 << 20), IsOk());
  EXPECT_THAT(mapper.RefreshCapacity(*device), IsOk());
  EXPECT_EQ(SysfsAttr(device->path, "size"), "10240");

  {
    Holder holder(device->path, /*exclusive=*/true);
    ASSERT_TRUE(holder.holding());
    EXPECT_TRUE(IsBusy(mapper.Unmap(*device)));
  }
  EXPECT_THAT(mapper.Unmap(*device), IsOk());
  EXPECT_THAT(mapper.Unmap(*device), IsOk());
  EXPECT_THAT(mapper.List(), IsOk());
  EXPECT_THAT(*mapper.List(), Not(Contains(*device)));
  options.image = {"pool", "missing"};
  EXPECT_THAT(mapper.Map(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("pool/missing")));
}

}  // namespace
}  // namespace rbdcsi
