// Issue 8, defect 7: unstage removes every mapping of the volume's image made by this plugin's
// mapper (a map that finished after a crash leaves one nobody recorded), and nothing else.
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

MappedDevice Device(unsigned minor, const ImageSpec& image) {
  return {absl::StrCat("/dev/fake", minor), 7, minor, image};
}

TEST_F(NodeOpsTest, UnstageUnmapsAnOrphanMappingOfTheImageToo) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  // A child `rbd map` of an earlier, killed attempt finished later; plus mappings that are not
  // this image's (another image by the same mapper, this image's name in another mapper).
  loop_.mapped().push_back(Device(5, {"rbd", "img1"}));
  loop_.mapped().push_back(Device(6, {"rbd", "other"}));
  krbd_.mapped().push_back(Device(7, {"rbd", "img1"}));
  log_.clear();
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(log_, ElementsAre("unmount " + staging(), "unmap /dev/fake0", "unmap /dev/fake5"));
  ASSERT_EQ(loop_.mapped().size(), 1u);
  EXPECT_EQ(loop_.mapped()[0].path, "/dev/fake6");
  EXPECT_EQ(krbd_.mapped().size(), 1u);
  EXPECT_FALSE(HasRecord());
}

// A map that timed out but completed later, twice (kubelet retried while rbd hung): the
// unstage that follows removes both devices.
TEST_F(NodeOpsTest, UnstageAfterTimedOutMapsRemovesEveryLateMapping) {
  script_.Fail("map", absl::DeadlineExceededError("rbd map timed out"));
  EXPECT_THAT(ops_->Stage(StageRequest()), StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_TRUE(HasRecord());
  loop_.mapped().push_back(Device(3, {"rbd", "img1"}));  // the kernel finished it later
  loop_.mapped().push_back(Device(4, {"rbd", "img1"}));
  ASSERT_THAT(ops_->Unstage(UnstageRequest()), IsOk());
  EXPECT_THAT(loop_.mapped(), IsEmpty());
  EXPECT_FALSE(HasRecord());
}

// A device another volume's record owns is never unmapped, even if it maps the same image.
TEST_F(NodeOpsTest, AMappingAnotherRecordOwnsIsNotUnmapped) {
  ASSERT_THAT(ops_->Stage(StageRequest()), IsOk());
  VolumeRecord other = *records_.Load("rbd/img1").value();
  other.volume_id = "img1-alias";
  other.device = Device(9, {"rbd", "img1"});
  other.step = StageStep::kMapped;
  loop_.mapped().push_back(other.device);
  ASSERT_THAT(records_.Save(other), IsOk());
  log_.clear();
  EXPECT_THAT(ops_->Unstage(UnstageRequest()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("img1-alias")));
  EXPECT_THAT(log_, ElementsAre("unmount " + staging(), "unmap /dev/fake0"));
  ASSERT_EQ(loop_.mapped().size(), 1u);
  EXPECT_EQ(loop_.mapped()[0].path, "/dev/fake9");
}

}  // namespace
}  // namespace rbdcsi
