#include "driver/mount_stack.h"

#include <cerrno>

#include "gtest/gtest.h"
#include "mounter/testing/fake_mounter.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

// Counts the table reads: each one costs time in proportion to every mount of the namespace.
class CountingMounter : public FakeMounter {
 public:
  using FakeMounter::FakeMounter;
  absl::StatusOr<std::vector<MountInfo>> List() override {
    ++lists;
    return FakeMounter::List();
  }
  int lists = 0;
};

class MountStackTest : public ::testing::Test {
 protected:
  MountStackTest() {
    mounter_.AddDevice("/dev/loop7", 7, 7);
    mounter_.AddDevice("/dev/loop8", 7, 8);
  }
  ActionLog log_;
  FailureScript script_;
  CountingMounter mounter_{&log_, &script_};
};

TEST_F(MountStackTest, AStackGoesTopFirstWithOneTableReadPerPass) {
  ASSERT_THAT(mounter_.Mount("/dev/loop7", "/stage", "ext4", ""), IsOk());
  ASSERT_THAT(mounter_.Mount("/dev/loop8", "/stage", "ext4", ""), IsOk());
  ASSERT_THAT(mounter_.Mount("/dev/loop7", "/other", "ext4", ""), IsOk());
  std::vector<unsigned> tops;
  UnmountStackHooks hooks;
  hooks.check_top = [&](const MountInfo& top) {
    tops.push_back(top.minor);
    return absl::OkStatus();
  };
  log_.clear();
  mounter_.lists = 0;
  ASSERT_THAT(UnmountStack(mounter_, "/stage", "vol", hooks), IsOk());
  EXPECT_EQ(tops, (std::vector<unsigned>{8, 7}));
  EXPECT_EQ(log_, (ActionLog{"unmount /stage", "unmount /stage"}));
  // One read for the stack, one (the fake's IsMountPoint asks List) to see nothing is left.
  EXPECT_EQ(mounter_.lists, 2);
  ASSERT_EQ(mounter_.List()->size(), 1u);  // /other stays
}

TEST_F(MountStackTest, TheCallersTableServesTheFirstPass) {
  ASSERT_THAT(mounter_.Mount("/dev/loop7", "/stage", "ext4", ""), IsOk());
  const std::vector<MountInfo> table = mounter_.List().value();
  mounter_.lists = 0;
  ASSERT_THAT(UnmountStack(mounter_, "/stage", "vol", {}, &table), IsOk());
  EXPECT_EQ(mounter_.lists, 1);  // only the fake's IsMountPoint, after the unmount
  EXPECT_TRUE(mounter_.List()->empty());
}

TEST_F(MountStackTest, NothingMountedIsOneReadAndNoUnmount) {
  ASSERT_THAT(UnmountStack(mounter_, "/stage", "vol", {}), IsOk());
  EXPECT_TRUE(log_.empty());
  EXPECT_EQ(mounter_.lists, 1);
}

TEST_F(MountStackTest, AForeignTopIsRefusedBeforeAnyUnmount) {
  ASSERT_THAT(mounter_.Mount("/dev/loop7", "/stage", "ext4", ""), IsOk());
  ASSERT_THAT(mounter_.Mount("/dev/loop8", "/stage", "ext4", ""), IsOk());
  log_.clear();
  UnmountStackHooks hooks;
  hooks.check_top = [](const MountInfo& top) {
    return top.minor == 7 ? absl::OkStatus() : absl::FailedPreconditionError("not ours");
  };
  EXPECT_THAT(UnmountStack(mounter_, "/stage", "vol", hooks),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not ours")));
  EXPECT_TRUE(log_.empty());
}

// A busy unmount is retried after the hook, from a fresh read of the table.
TEST_F(MountStackTest, BusyIsRetriedAfterTheHookFromAFreshTable) {
  ASSERT_THAT(mounter_.Mount("/dev/loop7", "/stage", "ext4", ""), IsOk());
  script_.Fail("unmount", ErrnoToStatus(EBUSY, "unmounting /stage"));
  int busy_calls = 0;
  UnmountStackHooks hooks;
  hooks.on_busy = [&](const absl::Status&) {
    ++busy_calls;
    return absl::OkStatus();
  };
  ASSERT_THAT(UnmountStack(mounter_, "/stage", "vol", hooks), IsOk());
  EXPECT_EQ(busy_calls, 1);
  EXPECT_TRUE(mounter_.List()->empty());
}

}  // namespace
}  // namespace rbdcsi
