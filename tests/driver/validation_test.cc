#include "driver/validation.h"

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using Mode = csi::v1::VolumeCapability::AccessMode;

csi::v1::VolumeCapability MountCap(const std::string& fs, Mode::Mode mode) {
  csi::v1::VolumeCapability cap;
  cap.mutable_mount()->set_fs_type(fs);
  cap.mutable_access_mode()->set_mode(mode);
  return cap;
}

TEST(ValidatePathTest, RequiresCleanAbsolutePaths) {
  EXPECT_THAT(ValidatePath("/var/lib/kubelet/x", "target_path"), IsOk());
  EXPECT_THAT(ValidatePath("", "target_path"),
              StatusIs(absl::StatusCode::kInvalidArgument, "target_path is required"));
  EXPECT_THAT(ValidatePath("rel/x", "target_path"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(ValidatePath("/a/../b", "p"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'..'")));
  EXPECT_THAT(ValidatePath("/a/./b", "p"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'.'")));
  EXPECT_THAT(ValidatePath(std::string("/a\0b", 4), "p"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
  EXPECT_THAT(ValidatePath("/" + std::string(5000, 'a'), "p"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("4095")));
  EXPECT_THAT(ValidatePath("/a/..b/c..", "p"), IsOk());  // dots inside names are fine
}

TEST(ParseCapabilityTest, MountDefaultsAndRules) {
  auto cap = ParseCapability(MountCap("", Mode::SINGLE_NODE_WRITER));
  ASSERT_THAT(cap, IsOk());
  EXPECT_FALSE(cap->block);
  EXPECT_EQ(cap->fs_type, "ext4");
  EXPECT_FALSE(cap->read_only_mode);
  EXPECT_TRUE(ParseCapability(MountCap("xfs", Mode::SINGLE_NODE_READER_ONLY))->read_only_mode);
  EXPECT_THAT(ParseCapability(MountCap("zfs", Mode::SINGLE_NODE_WRITER)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'zfs' is not supported")));
  EXPECT_THAT(ParseCapability(MountCap("ext4", Mode::MULTI_NODE_MULTI_WRITER)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("corrupted")));
  EXPECT_THAT(ParseCapability(MountCap("ext4", Mode::UNKNOWN)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UNKNOWN")));
  auto smuggled = MountCap("ext4", Mode::SINGLE_NODE_WRITER);
  smuggled.mutable_mount()->add_mount_flags("noatime,remount");
  EXPECT_THAT(ParseCapability(smuggled),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("several options")));
  // The mount-flag policy is part of request validation: named flag, INVALID_ARGUMENT.
  auto loop = MountCap("ext4", Mode::SINGLE_NODE_WRITER);
  loop.mutable_mount()->add_mount_flags("loop");
  EXPECT_THAT(ParseCapability(loop),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'loop' would stack")));
  auto ro = MountCap("ext4", Mode::MULTI_NODE_READER_ONLY);
  ro.mutable_mount()->add_mount_flags("noatime");
  EXPECT_THAT(ParseCapability(ro)->mount_flags, ::testing::ElementsAre("noatime", "ro"));
}

TEST(ParseCapabilityTest, BlockAndMissingParts) {
  csi::v1::VolumeCapability block;
  block.mutable_block();
  block.mutable_access_mode()->set_mode(Mode::MULTI_NODE_MULTI_WRITER);
  auto cap = ParseCapability(block);
  ASSERT_THAT(cap, IsOk());
  EXPECT_TRUE(cap->block);
  csi::v1::VolumeCapability no_mode;
  no_mode.mutable_mount();
  EXPECT_THAT(ParseCapability(no_mode),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("access_mode is required")));
  csi::v1::VolumeCapability no_type;
  no_type.mutable_access_mode()->set_mode(Mode::SINGLE_NODE_WRITER);
  EXPECT_THAT(ParseCapability(no_type),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("access_type is required")));
}

}  // namespace
}  // namespace rbdcsi
