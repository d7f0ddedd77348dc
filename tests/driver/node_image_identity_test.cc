// One image, many names: stage and unstage serialize by the image's identity, not by the
// volume id, and decide ownership under that lock (issue 8, defect 1).
#include <future>
#include <thread>

#include "gtest/gtest.h"
#include "tests/driver/node_fixture.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// "alias" names rbd/img1 through its volume context.
csi::v1::NodeStageVolumeRequest AliasOf(csi::v1::NodeStageVolumeRequest req,
                                        const std::string& staging) {
  req.set_volume_id("alias");
  req.set_staging_target_path(staging);
  auto& ctx = *req.mutable_volume_context();
  ctx["pool"] = "rbd";
  ctx["image"] = "img1";
  return req;
}

TEST_F(NodeOpsTest, TwoVolumeIdsOfOneImageRacingNeverBothStage) {
  // The first stage is held inside its map; the alias arrives meanwhile. Before the image lock
  // both returned OK with two devices and two read-write mounts of one image.
  std::promise<void> in_map, release;
  std::future<void> released = release.get_future();
  loop_.OnNextMap([&] {
    in_map.set_value();
    released.wait();
  });
  std::future<absl::Status> first =
      std::async(std::launch::async, [&] { return ops_->Stage(StageRequest()); });
  in_map.get_future().wait();
  const absl::Status alias = ops_->Stage(AliasOf(StageRequest(), dir_ / "alias-staging"));
  release.set_value();
  ASSERT_THAT(first.get(), IsOk());
  EXPECT_THAT(alias, StatusIs(absl::StatusCode::kAborted, HasSubstr("image rbd/img1")));
  EXPECT_EQ(loop_.mapped().size(), 1u);

  // Once the first is done, the alias is refused for good, under the lock, by ownership.
  EXPECT_THAT(ops_->Stage(AliasOf(StageRequest(), dir_ / "alias-staging")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already staged on this node for volume rbd/img1")));
  EXPECT_EQ(loop_.mapped().size(), 1u);
  EXPECT_EQ(mounter_.table().size(), 1u);
}

TEST_F(NodeOpsTest, AnUnfinishedStageOfAnotherVolumeIdOwnsTheImage) {
  // rbd/img1's map timed out: its record (step "mapping") stays and no device is listed yet.
  script_.Fail("map", absl::DeadlineExceededError("rbd map timed out"));
  ASSERT_THAT(ops_->Stage(StageRequest()), StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_TRUE(HasRecord());
  EXPECT_THAT(ops_->Stage(AliasOf(StageRequest(), dir_ / "alias-staging")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("unfinished stage or unstage on this node for volume rbd/img1")));
  EXPECT_TRUE(loop_.mapped().empty());
}

TEST_F(NodeOpsTest, TheImageLockIsHeldByStageAndUnstageUnderAnyName) {
  const ImageId image("", "rbd", "", "img1");
  ASSERT_THAT(locks_.TryLockImage(image, "someone"), IsOk());
  EXPECT_THAT(ops_->Stage(StageRequest()),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("(volume someone)")));
  EXPECT_THAT(ops_->Stage(AliasOf(StageRequest(), dir_ / "alias-staging")),
              StatusIs(absl::StatusCode::kAborted));
  locks_.UnlockImage(image.Key());
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  ASSERT_THAT(locks_.TryLockImage(image, "someone"), IsOk());
  EXPECT_THAT(ops_->Unstage(UnstageRequest()), StatusIs(absl::StatusCode::kAborted));
  locks_.UnlockImage(image.Key());
  EXPECT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(locks_.TryLockImage(image, "someone"), IsOk());  // released after the call
}

TEST_F(NodeOpsTest, DifferentNamesOfOneImageResolveToOneIdentity) {
  // The context wins over the id; a bare name means the default pool.
  for (const std::string id : {"rbd/img1", "img1"}) {
    auto req = StageRequest();
    req.set_volume_id(id);
    req.mutable_volume_context()->erase("pool");
    ASSERT_THAT(ops_->Stage(req), IsOk()) << id;
    EXPECT_THAT(ops_->Stage(AliasOf(StageRequest(), dir_ / "alias-staging")),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("for volume " + id)));
    csi::v1::NodeUnstageVolumeRequest unstage;
    unstage.set_volume_id(id);
    unstage.set_staging_target_path(staging());
    ASSERT_THAT(ops_->Unstage(unstage), IsOk());
  }
}

TEST_F(NodeOpsTest, CephImagesAreKeyedByCluster) {
  // Two clusters may each have pool2/img2; a clusterID or, for static volumes, the monitor list
  // tells them apart, and every spelling of one monitor list is one cluster.
  auto req = KrbdStageRequest("static-1", "10.0.0.1:6789,10.0.0.2:6789");
  ASSERT_THAT(ops_->Stage(req), IsOk());
  EXPECT_EQ(records_.Load("static-1").value()->cluster_id,
            ClusterIdFromMonitors("10.0.0.2:6789, 10.0.0.1:6789"));

  auto same = req;
  same.set_volume_id("static-2");
  same.set_staging_target_path(dir_ / "s2");
  (*same.mutable_volume_context())["monitors"] = "10.0.0.2:6789, 10.0.0.1:6789";
  EXPECT_THAT(ops_->Stage(same),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("for volume static-1")));
  auto other = same;
  (*other.mutable_volume_context())["clusterID"] = "other-cluster";
  EXPECT_THAT(ops_->Stage(other), Not(StatusIs(absl::StatusCode::kAborted)));
}

TEST_F(NodeOpsTest, AClusterIdNeedsACephMapper) {
  auto req = StageRequest();
  (*req.mutable_volume_context())["clusterID"] = "c1";
  EXPECT_THAT(ops_->Stage(req),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("clusterID")));
  auto ceph_id = StageRequest();
  ceph_id.set_volume_id("c1:rbd/img1");
  ceph_id.mutable_volume_context()->clear();
  (*ceph_id.mutable_volume_context())["mapper"] = "loop";
  EXPECT_THAT(ops_->Stage(ceph_id),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cluster c1")));
  EXPECT_FALSE(HasRecord());
}

}  // namespace
}  // namespace rbdcsi
