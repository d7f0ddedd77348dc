// Unstage against stateful fakes: unmount, unmap and forget; every retry after a partial
// failure; the busy handler and its one wait budget; finding the device without a record.
#include <filesystem>

#include "driver/node.h"
#include "gtest/gtest.h"
#include "tests/driver/node_fixture.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST_F(NodeOpsTest, UnstageUnmountsUnmapsAndForgets) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  log_.clear();
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("unmount " + staging(), "unmap /dev/fake0"));
  EXPECT_FALSE(HasRecord());
  EXPECT_THAT(mounter_.table(), IsEmpty());
  log_.clear();
  EXPECT_THAT(ops_->Unstage(UnstageRequest()), IsOk());  // again: nothing left to do
  EXPECT_THAT(log_, IsEmpty());
}

// The seed incident: the first unstage unmounts but cannot unmap; the staging directory is
// gone by the retry. The record still leads the retry to the unmap.
TEST_F(NodeOpsTest, RetryAfterBusyUnmapReachesTheUnmapWithoutTheStagingPath) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  log_.clear();
  script_.Fail("unmap", BusyError("rbd: unmap failed: (16) Device or resource busy"));
  EXPECT_THAT(ops_->Unstage(UnstageRequest()), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                        HasSubstr("(16) Device or resource busy")));
  EXPECT_THAT(log_,
              ElementsAre("unmount " + staging(), "unmap /dev/fake0", "busy unmap attempt 0"));
  EXPECT_EQ(RecordStep(), StageStep::kUnmounted);
  EXPECT_EQ(loop_.mapped().size(), 1u);

  std::filesystem::remove_all(staging());  // kubelet removed it meanwhile
  log_.clear();
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("unmap /dev/fake0"));
  EXPECT_FALSE(HasRecord());
  EXPECT_THAT(loop_.mapped(), IsEmpty());
}

TEST_F(NodeOpsTest, RetryAfterFailedUnmountFinishesBoth) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  script_.Fail("unmount", absl::InternalError("umount went wrong"));
  EXPECT_THAT(ops_->Unstage(UnstageRequest()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("umount went wrong")));
  EXPECT_EQ(RecordStep(), StageStep::kStaged);
  log_.clear();
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("unmount " + staging(), "unmap /dev/fake0"));
  EXPECT_FALSE(HasRecord());
}

TEST_F(NodeOpsTest, BusyHandlerThatSaysRetryLeadsToAnotherUnmap) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  log_.clear();
  script_.Fail("unmap", BusyError("busy"), 2);
  busy_.set_reaction([](const VolumeRecord&, BusyStage, int attempt) {
    return attempt < 1 ? absl::OkStatus() : absl::FailedPreconditionError("gave up");
  });
  EXPECT_THAT(ops_->Unstage(UnstageRequest()),
              StatusIs(absl::StatusCode::kFailedPrecondition, "gave up"));
  EXPECT_THAT(log_, ElementsAre("unmount " + staging(), "unmap /dev/fake0", "busy unmap attempt 0",
                                "unmap /dev/fake0", "busy unmap attempt 1"));
  log_.clear();
  script_.Fail("unmap", BusyError("busy"), 1);
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("unmap /dev/fake0", "busy unmap attempt 0", "unmap /dev/fake0"));
}

TEST_F(NodeOpsTest, BusyUnmountGoesToTheBusyHandlerAndNeverLazily) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  log_.clear();
  script_.Fail("unmount", ErrnoToStatus(EBUSY, "unmounting"));
  EXPECT_THAT(ops_->Unstage(UnstageRequest()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("held")));
  EXPECT_THAT(log_, ElementsAre("unmount " + staging(), "busy unmount attempt 0"));
  EXPECT_EQ(mounter_.table().size(), 1u);
  EXPECT_EQ(loop_.mapped().size(), 1u);
}

TEST_F(NodeOpsTest, UnstageWithoutRecordFindsTheDeviceFromTheMountTable) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  ASSERT_THAT(records_.Delete("rbd/img1"), IsOk());  // e.g. state dir lost
  log_.clear();
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("unmount " + staging(), "unmap /dev/fake0"));
  EXPECT_THAT(loop_.mapped(), IsEmpty());
}

TEST_F(NodeOpsTest, UnstageLeavesForeignMountsAlone) {
  mounter_.AddDevice("/dev/sda1", 8, 1);
  ASSERT_THAT(mounter_.Mount("/dev/sda1", staging(), "ext4", ""), IsOk());
  log_.clear();
  EXPECT_THAT(ops_->Unstage(UnstageRequest()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not touching it")));
  EXPECT_THAT(log_, IsEmpty());
}

TEST_F(NodeOpsTest, StageAfterAnUnfinishedUnstageFinishesItFirst) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  script_.Fail("unmap", BusyError("busy"));
  EXPECT_FALSE(ops_->Unstage(UnstageRequest()).ok());
  log_.clear();
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  // The image keeps its filesystem, so no second mkfs.
  EXPECT_THAT(log_, ElementsAre("unmap /dev/fake0", "map rbd/img1",
                                "mount /dev/fake0 " + staging() + " ext4 noatime"));
  EXPECT_EQ(RecordStep(), StageStep::kStaged);
}

TEST_F(NodeOpsTest, MapThatTimesOutKeepsTheRecordSoUnstageCleansUp) {
  script_.Fail("map", absl::DeadlineExceededError("rbd did not finish"));
  EXPECT_THAT(ops_->Stage(StageRequest()),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("record is kept")));
  EXPECT_EQ(RecordStep(), StageStep::kMapping);
  // The kernel finished the mapping after all.
  MapOptions late;
  late.image = {"rbd", "img1"};
  ASSERT_THAT(loop_.Map(late), IsOk());
  log_.clear();
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("unmap /dev/fake0"));
  EXPECT_FALSE(HasRecord());
}

TEST_F(NodeOpsTest, UnstageWithoutRecordOrMountStillUnmapsTheImage) {
  MapOptions map;
  map.image = {"rbd", "img1"};
  ASSERT_THAT(loop_.Map(map), IsOk());  // mapped, never mounted, record lost
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(loop_.mapped(), IsEmpty());
  EXPECT_FALSE(HasRecord());
}

TEST_F(NodeOpsTest, AMapperUnusableHereDoesNotBlockTheSearch) {
  MapOptions map;
  map.image = {"rbd", "img1"};
  ASSERT_THAT(loop_.Map(map), IsOk());
  // krbd is asked first (mappers are ordered by name) and has no rbd CLI on this node.
  script_.Fail("list", absl::FailedPreconditionError("program not found: rbd"));
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(loop_.mapped(), IsEmpty());
  // Any other listing failure is reported: the plugin cannot be sure nothing is mapped.
  ASSERT_THAT(loop_.Map(map), IsOk());
  script_.Fail("list", absl::InternalError("rbd crashed"));
  EXPECT_THAT(ops_->Unstage(UnstageRequest()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("rbd crashed")));
}

TEST_F(NodeOpsTest, AnotherVolumesMappingIsNeitherReusedNorUnmapped) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  auto alias = StageRequest();
  alias.set_volume_id("img1");  // names the same image rbd/img1
  alias.mutable_volume_context()->clear();
  alias.set_staging_target_path(dir_ / "other-staging");
  EXPECT_THAT(ops_->Stage(alias), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("already staged on this node for volume "
                                                     "rbd/img1")));
  csi::v1::NodeUnstageVolumeRequest unstage_alias;
  unstage_alias.set_volume_id("img1");
  unstage_alias.set_staging_target_path(dir_ / "other-staging");
  EXPECT_THAT(ops_->Unstage(unstage_alias), IsOk());
  EXPECT_EQ(loop_.mapped().size(), 1u);  // still rbd/img1's
  EXPECT_EQ(RecordStep(), StageStep::kStaged);
}

TEST_F(NodeOpsTest, UnreachableMountFailsInsteadOfSpinning) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  script_.Fail("unmount", absl::NotFoundError("not mounted"), 1000);
  log_.clear();
  EXPECT_THAT(ops_->Unstage(UnstageRequest()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cannot be unmounted")));
  EXPECT_EQ(log_.size(), 1u);
}

TEST_F(NodeOpsTest, OneWaitBudgetForTheWholeUnstage) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  script_.Fail("unmount", ErrnoToStatus(EBUSY, "unmounting"));
  script_.Fail("unmap", BusyError("busy"));
  busy_.set_reaction([](const VolumeRecord&, BusyStage, int) { return absl::OkStatus(); });
  log_.clear();
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(log_,
              ElementsAre("unmount " + staging(), "busy unmount attempt 0", "unmount " + staging(),
                          "unmap /dev/fake0", "busy unmap attempt 1", "unmap /dev/fake0"));
}

}  // namespace
}  // namespace rbdcsi
