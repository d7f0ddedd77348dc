// Stage, publish, stats and validation against stateful fakes: every stage step failing, and its
// rollback. Unstage and its retries: node_unstage_test.cc.
#include "driver/node.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/driver/node_fixture.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

TEST_F(NodeOpsTest, StageMapsFormatsBlankDeviceAndMounts) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("map rbd/img1", "format /dev/fake0 ext4",
                                "mount /dev/fake0 " + staging() + " ext4 noatime"));
  EXPECT_EQ(RecordStep(), StageStep::kStaged);
  auto record = records_.Load("rbd/img1").value();
  EXPECT_EQ(record->device.path, "/dev/fake0");
  EXPECT_EQ(record->staging_path, staging());
}

TEST_F(NodeOpsTest, StageDoesNotFormatADeviceThatHasTheFilesystem) {
  filesystems_.fs()["/dev/fake0"] = "ext4";
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("map rbd/img1", "mount /dev/fake0 " + staging() + " ext4 noatime"));
}

TEST_F(NodeOpsTest, StageRefusesToFormatOverAnotherFilesystemAndRollsBack) {
  filesystems_.fs()["/dev/fake0"] = "xfs";
  EXPECT_THAT(ops_->Stage(StageRequest("ext4")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("holds xfs")));
  EXPECT_THAT(log_, ElementsAre("map rbd/img1", "unmap /dev/fake0"));
  EXPECT_FALSE(HasRecord());
  EXPECT_THAT(loop_.mapped(), IsEmpty());
}

TEST_F(NodeOpsTest, StageIsIdempotentAndRejectsIncompatibleRepeats) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  log_.clear();
  for (int i = 0; i < 3; ++i) EXPECT_THAT(ops_->Stage(StageRequest()), IsOk());
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_THAT(ops_->Stage(StageRequest("xfs")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("filesystem ext4")));
  auto other_path = StageRequest();
  other_path.set_staging_target_path(dir_ / "elsewhere");
  EXPECT_THAT(ops_->Stage(other_path),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("staging path")));
  EXPECT_THAT(log_, IsEmpty());
}

TEST_F(NodeOpsTest, EachStageStepFailingUndoesWhatItDid) {
  struct Case {
    const char* action;
    std::vector<std::string> expected_log;
  };
  const std::string mount = "mount /dev/fake0 " + staging() + " ext4 noatime";
  for (const Case& c : std::vector<Case>{
           {"map", {"map rbd/img1"}},
           {"probe", {"map rbd/img1", "unmap /dev/fake0"}},
           {"format", {"map rbd/img1", "format /dev/fake0 ext4", "unmap /dev/fake0"}},
           {"mount", {"map rbd/img1", "format /dev/fake0 ext4", mount, "unmap /dev/fake0"}},
       }) {
    SCOPED_TRACE(c.action);
    log_.clear();
    filesystems_.fs().clear();
    script_.Fail(c.action, absl::InternalError(absl::StrCat(c.action, " broke")));
    EXPECT_THAT(ops_->Stage(StageRequest()),
                StatusIs(absl::StatusCode::kInternal, HasSubstr(absl::StrCat(c.action, " broke"))));
    EXPECT_EQ(log_, c.expected_log);
    EXPECT_FALSE(HasRecord());
    EXPECT_THAT(loop_.mapped(), IsEmpty());
    EXPECT_THAT(mounter_.table(), IsEmpty());
  }
}

TEST_F(NodeOpsTest, StageOfAMissingImageIsNotFoundAndLeavesNothing) {
  auto req = StageRequest();
  req.set_volume_id("rbd/missing");
  req.mutable_volume_context()->clear();
  EXPECT_THAT(ops_->Stage(req), StatusIs(absl::StatusCode::kNotFound, HasSubstr("rbd/missing")));
  EXPECT_FALSE(records_.Load("rbd/missing").value().has_value());
}

TEST_F(NodeOpsTest, BlankReadOnlyVolumeCannotBeStaged) {
  auto req = StageRequest();
  req.mutable_volume_capability()->mutable_access_mode()->set_mode(
      csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_READER_ONLY);
  EXPECT_THAT(ops_->Stage(req), StatusIs(absl::StatusCode::kFailedPrecondition,
                                         HasSubstr("has no filesystem and read-only")));
  EXPECT_EQ(log_.front(), "map rbd/img1 ro");
  EXPECT_THAT(loop_.mapped(), IsEmpty());
}

TEST_F(NodeOpsTest, ConcurrentOperationOnTheSameVolumeIsAborted) {
  ASSERT_THAT(locks_.TryLock("rbd/img1"), IsOk());
  EXPECT_THAT(ops_->Stage(StageRequest()),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("already in progress")));
  EXPECT_THAT(ops_->Unstage(UnstageRequest()), StatusIs(absl::StatusCode::kAborted, ::testing::_));
  locks_.Unlock("rbd/img1");
  EXPECT_THAT(ops_->Stage(StageRequest()), IsOk());
  EXPECT_THAT(locks_.TryLock("rbd/img1"), IsOk());  // released after the call
}

TEST_F(NodeOpsTest, KrbdTakesMonitorsAndSecretsButNeverRecordsTheKey) {
  auto req = KrbdStageRequest("vol-2", "10.0.0.1:6789");
  ASSERT_THAT(ops_->Stage(req), IsOk());
  EXPECT_EQ(krbd_.last_options().key, "AQBs3cr3tKey==");
  EXPECT_EQ(krbd_.last_options().user, "kube");
  EXPECT_THAT(ReadFileOrEmpty(records_.dir() + "/" + RecordStore::FileNameFor("vol-2")),
              Not(HasSubstr("s3cr3t")));
  (*req.mutable_secrets()).erase("userKey");
  req.set_volume_id("vol-3");
  EXPECT_THAT(ops_->Stage(req), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("userKey")));
}

TEST_F(NodeOpsTest, KrbdAcceptsTheInTreeShape) {
  // What `rbdcsi migrate-pv` writes for an in-tree rbd PV: user in the context, the Secret of
  // type kubernetes.io/rbd with the key under `key`.
  auto req = KrbdStageRequest("vol-4", "10.0.0.1:6789,10.0.0.2:6789");
  req.mutable_secrets()->clear();
  (*req.mutable_secrets())["key"] = "AQBInTr33Key==";
  (*req.mutable_volume_context())["user"] = "kube";
  ASSERT_THAT(ops_->Stage(req), IsOk());
  EXPECT_EQ(krbd_.last_options().key, "AQBInTr33Key==");
  EXPECT_EQ(krbd_.last_options().user, "kube");
  EXPECT_THAT(ReadFileOrEmpty(records_.dir() + "/" + RecordStore::FileNameFor("vol-4")),
              Not(HasSubstr("InTr33")));

  // Without `user`, the in-tree default: admin (on another image: one image, one volume).
  req.set_volume_id("vol-5");
  (*req.mutable_volume_context())["image"] = "img5";
  krbd_.AddImage("pool2/img5");
  req.mutable_volume_context()->erase("user");
  ASSERT_THAT(ops_->Stage(req), IsOk());
  EXPECT_EQ(krbd_.last_options().user, "admin");

  // No key at all is still refused, naming what is missing.
  req.set_volume_id("vol-6");
  req.mutable_secrets()->clear();
  EXPECT_THAT(ops_->Stage(req), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("userKey")));
}

TEST_F(NodeOpsTest, ValidationComesBeforeAnyEffect) {
  auto no_id = StageRequest();
  no_id.clear_volume_id();
  EXPECT_THAT(ops_->Stage(no_id),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("volume_id")));
  auto relative = StageRequest();
  relative.set_staging_target_path("staging");
  EXPECT_THAT(ops_->Stage(relative),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
  auto dotdot = StageRequest();
  dotdot.set_staging_target_path("/var/lib/../etc");
  EXPECT_THAT(ops_->Stage(dotdot), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("..")));
  auto bad_fs = StageRequest("btrfs");
  EXPECT_THAT(ops_->Stage(bad_fs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("btrfs")));
  auto bad_mapper = StageRequest();
  (*bad_mapper.mutable_volume_context())["mapper"] = "nbd9";
  EXPECT_THAT(ops_->Stage(bad_mapper),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown mapper 'nbd9'")));
  auto no_cap = StageRequest();
  no_cap.clear_volume_capability();
  EXPECT_THAT(ops_->Stage(no_cap),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("volume_capability")));
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_FALSE(HasRecord());
}

TEST_F(NodeOpsTest, PublishBindsTheStagedFilesystemAndUnpublishRemovesTheTarget) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  csi::v1::NodePublishVolumeRequest pub;
  pub.set_volume_id("rbd/img1");
  pub.set_staging_target_path(staging());
  pub.set_target_path(dir_ / "pods/p1/mount");
  *pub.mutable_volume_capability() = StageRequest().volume_capability();
  pub.set_readonly(true);
  std::filesystem::create_directories(dir_ / "pods/p1");  // the CO makes the parent
  log_.clear();
  ASSERT_THAT(ops_->Publish(pub), IsOk());
  ASSERT_THAT(ops_->Publish(pub), IsOk());  // idempotent
  EXPECT_THAT(log_, ElementsAre("bind " + staging() + " " + pub.target_path() + " ro"));
  EXPECT_TRUE(std::filesystem::is_directory(pub.target_path()));
  pub.set_readonly(false);
  EXPECT_THAT(ops_->Publish(pub),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("read-only")));

  csi::v1::NodeUnpublishVolumeRequest unpub;
  unpub.set_volume_id("rbd/img1");
  unpub.set_target_path(pub.target_path());
  ASSERT_THAT(ops_->Unpublish(unpub), IsOk());
  EXPECT_FALSE(std::filesystem::exists(pub.target_path()));
  EXPECT_THAT(ops_->Unpublish(unpub), IsOk());
}

TEST_F(NodeOpsTest, PublishOfAVolumeNotStagedHereIsNotFound) {
  csi::v1::NodePublishVolumeRequest pub;
  pub.set_volume_id("rbd/img1");
  pub.set_staging_target_path(staging());
  pub.set_target_path(dir_ / "target");
  *pub.mutable_volume_capability() = StageRequest().volume_capability();
  EXPECT_THAT(ops_->Publish(pub), StatusIs(absl::StatusCode::kNotFound, HasSubstr("not staged")));
}

TEST_F(NodeOpsTest, StagedRecordWhoseDeviceIsGoneIsStagedAgain) {
  auto block = StageRequest();
  block.mutable_volume_capability()->clear_mount();
  block.mutable_volume_capability()->mutable_block();
  ASSERT_THAT(ops_->Stage(block), IsOk());
  loop_.mapped().clear();  // a reboot: the record survived, the mapping did not
  krbd_.AddImage("rbd/other");
  log_.clear();
  ASSERT_THAT(ops_->Stage(block), IsOk());
  EXPECT_THAT(log_, ElementsAre("map rbd/img1"));
  ASSERT_EQ(loop_.mapped().size(), 1u);
  EXPECT_EQ(records_.Load("rbd/img1").value()->device.path, loop_.mapped()[0].path);
}

TEST_F(NodeOpsTest, VolumeConditionTurnsAbnormalWhenTheMountOrDeviceGoes) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  csi::v1::NodeGetVolumeStatsRequest req;
  req.set_volume_id("rbd/img1");
  req.set_volume_path(staging());
  csi::v1::NodeGetVolumeStatsResponse healthy;
  ASSERT_THAT(ops_->GetVolumeStats(req, &healthy), IsOk());
  EXPECT_FALSE(healthy.volume_condition().abnormal());
  EXPECT_EQ(healthy.usage_size(), 2);  // bytes and inodes

  mounter_.table().clear();
  csi::v1::NodeGetVolumeStatsResponse unmounted;
  ASSERT_THAT(ops_->GetVolumeStats(req, &unmounted), IsOk());
  EXPECT_TRUE(unmounted.volume_condition().abnormal());
  EXPECT_THAT(unmounted.volume_condition().message(), HasSubstr("is not mounted"));

  loop_.mapped().clear();
  csi::v1::NodeGetVolumeStatsResponse unmapped;
  ASSERT_THAT(ops_->GetVolumeStats(req, &unmapped), IsOk());
  EXPECT_TRUE(unmapped.volume_condition().abnormal());
  EXPECT_THAT(unmapped.volume_condition().message(), HasSubstr("no longer mapped"));
  loop_.set_why_gone("its daemon died");  // what the mapper knows (a dead rbd-nbd)
  ASSERT_THAT(ops_->GetVolumeStats(req, &unmapped), IsOk());
  EXPECT_THAT(unmapped.volume_condition().message(), HasSubstr("no longer mapped at"));
  EXPECT_THAT(unmapped.volume_condition().message(), HasSubstr("its daemon died"));

  req.set_volume_path("some/path");
  EXPECT_THAT(ops_->GetVolumeStats(req, &unmapped),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

// Issue 8: a staging path whose parent is missing was NOT_FOUND (to a CO: "no such volume"),
// after the image had been mapped and formatted. The CO makes that directory: INVALID_ARGUMENT,
// before anything happens.
TEST_F(NodeOpsTest, StagingPathWithAMissingParentIsInvalidArgumentBeforeAnyEffect) {
  for (const std::string& path : {dir_ / "missing/staging", dir_ / "missing/deeper/staging"}) {
    auto req = StageRequest();
    req.set_staging_target_path(path);
    EXPECT_THAT(ops_->Stage(req), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("is not a directory that exists")));
  }
  { std::ofstream(dir_ / "file") << "x"; }
  auto req = StageRequest();
  req.set_staging_target_path(dir_ / "file/staging");
  EXPECT_THAT(ops_->Stage(req), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_FALSE(HasRecord());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "missing"));
  // Only the last component is made when missing.
  req.set_staging_target_path(dir_ / "made-here");
  EXPECT_THAT(ops_->Stage(req), IsOk());
}

// Found by hostile_requests_test: a context pool the volume id contradicts was ignored (the
// volume was staged), a cephx user starting with '-' and a volume id with a line feed failed
// INTERNAL after `rbd device list` ran. All are the caller's mistakes, refused before any effect.
TEST_F(NodeOpsTest, ContradictoryContextArgvLikeUserAndControlBytesAreRefusedFirst) {
  for (const std::string pool : {"../..", "other"}) {
    auto req = StageRequest();
    (*req.mutable_volume_context())["pool"] = pool;
    EXPECT_THAT(ops_->Stage(req),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
  }
  for (const std::string user : {"-x", "--id", "a b", "a\tb"}) {
    auto req = KrbdStageRequest("pool2/img2", "127.0.0.1:6789");
    (*req.mutable_secrets())["userID"] = user;
    EXPECT_THAT(ops_->Stage(req), StatusIs(absl::StatusCode::kInvalidArgument,
                                           AllOf(HasSubstr("cephx user"), Not(HasSubstr(user)))));
  }
  auto req = KrbdStageRequest("pool2/img2", "-m");
  EXPECT_THAT(ops_->Stage(req), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'-'")));
  auto unstage = UnstageRequest();
  unstage.set_volume_id("rbd/img1\nforged");
  EXPECT_THAT(ops_->Unstage(unstage),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("control character")));
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_FALSE(HasRecord());
}

// Issue 8: NodeGetVolumeStats answered with the usage of whatever file system holds the path
// ("/": the host's root). Only the volume's staging path and publishes are the volume.
TEST_F(NodeOpsTest, StatsOfAPathThatIsNotTheVolumesIsNotFound) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  csi::v1::NodePublishVolumeRequest pub;
  pub.set_volume_id("rbd/img1");
  pub.set_staging_target_path(staging());
  pub.set_target_path(dir_ / "pods/p1/mount");
  *pub.mutable_volume_capability() = StageRequest().volume_capability();
  std::filesystem::create_directories(dir_ / "pods/p1");  // the CO makes the parent
  ASSERT_THAT(ops_->Publish(pub), IsOk());
  csi::v1::NodeGetVolumeStatsRequest req;
  req.set_volume_id("rbd/img1");
  csi::v1::NodeGetVolumeStatsResponse resp;
  for (const std::string& path : {staging(), pub.target_path(), staging() + "/"}) {
    req.set_volume_path(path);
    EXPECT_THAT(ops_->GetVolumeStats(req, &resp), IsOk()) << path;
  }
  std::filesystem::create_directories(dir_ / "pods/p2/mount");
  for (const std::string& path :
       {std::string("/"), dir_.path(), dir_ / "pods/p2/mount", std::string("/proc")}) {
    req.set_volume_path(path);
    resp.Clear();
    EXPECT_THAT(ops_->GetVolumeStats(req, &resp),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("neither staged nor published")))
        << path;
    EXPECT_EQ(resp.usage_size(), 0);
  }
  csi::v1::NodeExpandVolumeRequest expand;
  expand.set_volume_id("rbd/img1");
  expand.set_volume_path("/");
  csi::v1::NodeExpandVolumeResponse expanded;
  EXPECT_THAT(ops_->Expand(expand, &expanded), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(NodeOpsTest, PublishRefusesWhenTheStagingMountIsGone) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  mounter_.table().clear();  // unmounted behind the plugin's back
  csi::v1::NodePublishVolumeRequest pub;
  pub.set_volume_id("rbd/img1");
  pub.set_staging_target_path(staging());
  pub.set_target_path(dir_ / "target");
  *pub.mutable_volume_capability() = StageRequest().volume_capability();
  log_.clear();
  EXPECT_THAT(ops_->Publish(pub), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("is not mounted from /dev/fake0")));
  EXPECT_THAT(log_, IsEmpty());  // nothing was bound into the pod
}

TEST_F(NodeOpsTest, MapThatFailsAfterMappingIsUndone) {
  loop_.FailAfterMapping(absl::InternalError("rbd printed no device"));
  EXPECT_THAT(ops_->Stage(StageRequest()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("printed no device")));
  EXPECT_THAT(loop_.mapped(), IsEmpty());
  EXPECT_FALSE(HasRecord());
}

TEST_F(NodeOpsTest, PathsAreComparedInTheKernelsForm) {
  auto req = StageRequest();
  req.set_staging_target_path(dir_.path() + "//staging/");
  ASSERT_THAT(ops_->Stage(req), IsOk());
  EXPECT_EQ(records_.Load("rbd/img1").value()->staging_path, staging());
  EXPECT_THAT(ops_->Stage(StageRequest()), IsOk());  // the same path, written plainly
  log_.clear();
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("unmount " + staging(), "unmap /dev/fake0"));
}

}  // namespace
}  // namespace rbdcsi
