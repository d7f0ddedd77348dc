// NodePublishVolume and NodeUnpublishVolume against stateful fakes: unpublish undoes only what
// this plugin published for this volume, and leaves everything else at the target untouched.
#include <filesystem>
#include <fstream>

#include "absl/strings/str_split.h"
#include "driver/node.h"
#include "gtest/gtest.h"
#include "tests/driver/node_fixture.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class PublishTest : public NodeOpsTest {
 protected:
  void SetUp() override { fs::create_directories(dir_ / "pods/p1"); }

  std::string target() const { return dir_ / "pods/p1/mount"; }

  csi::v1::NodePublishVolumeRequest PublishRequest() const {
    csi::v1::NodePublishVolumeRequest pub;
    pub.set_volume_id("rbd/img1");
    pub.set_staging_target_path(staging());
    pub.set_target_path(target());
    *pub.mutable_volume_capability() = StageRequest().volume_capability();
    return pub;
  }

  csi::v1::NodeUnpublishVolumeRequest UnpublishRequest(const std::string& path,
                                                       const std::string& id = "rbd/img1") const {
    csi::v1::NodeUnpublishVolumeRequest req;
    req.set_volume_id(id);
    req.set_target_path(path);
    return req;
  }

  // A tmpfs someone else mounted at `path`.
  void MountForeign(const std::string& path) {
    MountInfo m;
    m.mount_id = 900;
    m.major = 0;
    m.minor = 77;
    m.mount_point = path;
    m.source = "tmpfs";
    m.fs_type = "tmpfs";
    m.mount_options = "rw";
    mounter_.table().push_back(m);
  }

  std::vector<std::string> Published() { return records_.Load("rbd/img1").value()->published; }
};

TEST_F(PublishTest, PublishIsRecordedBeforeTheBindAndUnpublishForgetsIt) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  ASSERT_THAT(ops_->Publish(PublishRequest()), IsOk());
  EXPECT_THAT(Published(), ElementsAre(target()));
  ASSERT_THAT(ops_->Unpublish(UnpublishRequest(target())), IsOk());
  EXPECT_THAT(Published(), IsEmpty());
  EXPECT_FALSE(fs::exists(target()));
  EXPECT_THAT(MountsAt(mounter_.table(), target()), IsEmpty());
}

TEST_F(PublishTest, AFailedBindIsForgottenAndItsDirectoryRemoved) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  script_.Fail("bind", absl::InternalError("bind broke"));
  EXPECT_THAT(ops_->Publish(PublishRequest()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("bind broke")));
  EXPECT_THAT(Published(), IsEmpty());
  EXPECT_FALSE(fs::exists(target()));
}

TEST_F(PublishTest, PublishCreatesOnlyTheLastComponent) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  auto pub = PublishRequest();
  pub.set_target_path(dir_ / "no/such/parent/mount");
  EXPECT_THAT(ops_->Publish(pub),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parent")));
  EXPECT_FALSE(fs::exists(dir_ / "no"));
  EXPECT_THAT(Published(), IsEmpty());
}

// A crash between writing the record and the bind: the retry of unpublish finds nothing
// mounted, removes the empty directory and forgets the publish.
TEST_F(PublishTest, ARecordedPublishWithoutItsBindIsCleanedUp) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  VolumeRecord r = *records_.Load("rbd/img1").value();
  r.published.push_back(target());
  ASSERT_THAT(records_.Save(r), IsOk());
  fs::create_directory(target());
  ASSERT_THAT(ops_->Unpublish(UnpublishRequest(target())), IsOk());
  EXPECT_FALSE(fs::exists(target()));
  EXPECT_THAT(Published(), IsEmpty());
}

TEST_F(PublishTest, UnpublishLeavesARegularFileThatWasNeverPublished) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  std::ofstream(target()) << "precious";
  log_.clear();
  EXPECT_THAT(ops_->Unpublish(UnpublishRequest(target())), IsOk());
  EXPECT_EQ(ReadFileOrEmpty(target()), "precious");
  EXPECT_THAT(log_, IsEmpty());
}

TEST_F(PublishTest, UnpublishNeverTouchesASymlinkOrItsTarget) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  std::ofstream(dir_ / "elsewhere") << "precious";
  fs::create_symlink(dir_ / "elsewhere", target());
  EXPECT_THAT(ops_->Unpublish(UnpublishRequest(target())),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("symbolic link")));
  EXPECT_TRUE(fs::is_symlink(target()));
  EXPECT_EQ(ReadFileOrEmpty(dir_ / "elsewhere"), "precious");
}

TEST_F(PublishTest, UnpublishLeavesAForeignMount) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  fs::create_directory(target());
  MountForeign(target());
  log_.clear();
  EXPECT_THAT(ops_->Unpublish(UnpublishRequest(target())),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("did not publish")));
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_EQ(MountsAt(mounter_.table(), target()).size(), 1u);
  EXPECT_TRUE(fs::is_directory(target()));
}

TEST_F(PublishTest, AForeignMountOnTopOfOurBindStopsTheUnpublish) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  ASSERT_THAT(ops_->Publish(PublishRequest()), IsOk());
  MountForeign(target());
  log_.clear();
  EXPECT_THAT(ops_->Unpublish(UnpublishRequest(target())),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not this volume's")));
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_EQ(MountsAt(mounter_.table(), target()).size(), 2u);
  EXPECT_THAT(Published(), ElementsAre(target()));
}

TEST_F(PublishTest, TheStagingPathIsNeitherPublishedToNorUnpublished) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  log_.clear();
  EXPECT_THAT(ops_->Unpublish(UnpublishRequest(staging())),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("staging path")));
  auto pub = PublishRequest();
  pub.set_target_path(staging());
  EXPECT_THAT(ops_->Publish(pub),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("staging path")));
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_EQ(MountsAt(mounter_.table(), staging()).size(), 1u);
}

// Another volume id cannot unpublish this volume's bind, and this one's unpublish stays
// possible afterwards.
TEST_F(PublishTest, AnotherVolumesUnpublishLeavesThisVolumesBind) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  ASSERT_THAT(ops_->Publish(PublishRequest()), IsOk());
  log_.clear();
  EXPECT_THAT(ops_->Unpublish(UnpublishRequest(target(), "rbd/other")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_THAT(ops_->Unpublish(UnpublishRequest(target())), IsOk());
  EXPECT_THAT(log_, ElementsAre("unmount " + target()));
}

TEST_F(PublishTest, ARecordOfAnOlderVersionStillUnpublishesItsBind) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  ASSERT_THAT(ops_->Publish(PublishRequest()), IsOk());
  VolumeRecord r = *records_.Load("rbd/img1").value();
  r.published.clear();
  r.publishes_known = false;
  ASSERT_THAT(records_.Save(r), IsOk());
  ASSERT_THAT(ops_->Unpublish(UnpublishRequest(target())), IsOk());
  EXPECT_THAT(MountsAt(mounter_.table(), target()), IsEmpty());
}

TEST_F(PublishTest, BlockPublishIsUndoneAndOnlyAnEmptyFileRemoved) {
  auto stage = StageRequest();
  stage.mutable_volume_capability()->clear_mount();
  stage.mutable_volume_capability()->mutable_block();
  ASSERT_THAT(ops_->Stage(stage), IsOk());
  // The fake bind does not make the target a device node; the record says it is published.
  VolumeRecord r = *records_.Load("rbd/img1").value();
  r.published.push_back(target());
  ASSERT_THAT(records_.Save(r), IsOk());
  std::ofstream(target()) << "data a pod wrote";
  ASSERT_THAT(ops_->Unpublish(UnpublishRequest(target())), IsOk());
  EXPECT_EQ(ReadFileOrEmpty(target()), "data a pod wrote");
  EXPECT_THAT(Published(), IsEmpty());
}

// Issue 8, defect 4: symlinks and the plugin's own directories in request paths.
TEST_F(PublishTest, AStagingPathThatIsASymlinkIsRefusedBeforeAnyEffect) {
  fs::create_directories(dir_ / "elsewhere");
  fs::create_directory_symlink(dir_ / "elsewhere", dir_ / "staging");
  EXPECT_THAT(ops_->Stage(StageRequest()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("symbolic link")));
  auto inside_state = StageRequest();
  inside_state.set_staging_target_path(records_.dir() + "/staging");
  EXPECT_THAT(ops_->Stage(inside_state),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not the CO's")));
  auto outside = StageRequest();
  outside.set_staging_target_path("/proc/self/cwd");
  EXPECT_THAT(ops_->Stage(outside),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kubelet directory")));
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_FALSE(HasRecord());
}

TEST_F(PublishTest, ATargetThatIsASymlinkIsNeitherPublishedNorUnpublished) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  fs::create_directories(dir_ / "etc");
  fs::create_directory_symlink(dir_ / "etc", target());
  log_.clear();
  EXPECT_THAT(ops_->Publish(PublishRequest()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("symbolic link")));
  EXPECT_THAT(ops_->Unpublish(UnpublishRequest(target())),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("symbolic link")));
  auto under_staging = PublishRequest();
  under_staging.set_target_path(staging() + "/pod");
  EXPECT_THAT(ops_->Publish(under_staging),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlaps")));
  EXPECT_THAT(log_, IsEmpty());
  EXPECT_TRUE(fs::is_symlink(target()));
  EXPECT_THAT(Published(), IsEmpty());
}

// How often the option "ro" is in the options (the last field) of a logged mount action.
int RoCount(const std::string& action) {
  int count = 0;
  for (absl::string_view option : absl::StrSplit(action.substr(action.rfind(' ') + 1), ',')) {
    count += option == "ro" ? 1 : 0;
  }
  return count;
}

// The mount-flag policy is the one place that adds "ro" for a read-only access mode; the stage
// and the publish pass it on once, whether or not the request asked for it too.
TEST_F(PublishTest, AReadOnlyStageAndPublishGiveTheMounterRoExactlyOnce) {
  filesystems_.fs()["/dev/fake0"] = "ext4";
  for (const bool asked : {false, true}) {
    SCOPED_TRACE(asked ? "mount flags ro, noatime" : "mount flags noatime");
    auto req = StageRequest();
    auto* cap = req.mutable_volume_capability();
    cap->mutable_access_mode()->set_mode(
        csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_READER_ONLY);
    if (asked) cap->mutable_mount()->add_mount_flags("ro");
    log_.clear();
    ASSERT_THAT(ops_->Stage(req), IsOk());
    ASSERT_EQ(log_.size(), 2u);
    EXPECT_EQ(log_[0], "map rbd/img1 ro");
    EXPECT_THAT(log_[1], ::testing::StartsWith("mount /dev/fake0 " + staging() + " ext4 "));
    EXPECT_EQ(RoCount(log_[1]), 1) << log_[1];

    auto pub = PublishRequest();
    *pub.mutable_volume_capability() = req.volume_capability();
    log_.clear();
    ASSERT_THAT(ops_->Publish(pub), IsOk());
    EXPECT_THAT(log_, ElementsAre("bind " + staging() + " " + target() + " ro"));

    ASSERT_THAT(ops_->Unpublish(UnpublishRequest(target())), IsOk());
    ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  }
}

}  // namespace
}  // namespace rbdcsi
