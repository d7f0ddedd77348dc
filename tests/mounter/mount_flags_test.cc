#include "mounter/mount_flags.h"

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::Status Check(const std::string& fs, std::vector<std::string> flags, bool ro = false) {
  return ApplyMountFlagPolicy(fs, flags, ro).status();
}

TEST(MountFlagPolicyTest, AllowsTuningOptionsOfEachFilesystem) {
  for (const char* flag :
       {"noatime", "nodiratime", "lazytime", "nosuid", "nodev", "noexec", "discard", "data=ordered",
        "commit=30", "errors=remount-ro", "barrier=0", "nobarrier", "usrquota", "rw"}) {
    EXPECT_THAT(Check("ext4", {flag}), IsOk()) << flag;
  }
  for (const char* flag :
       {"noatime", "discard", "inode64", "logbsize=256k", "allocsize=64m", "prjquota", "nouuid"}) {
    EXPECT_THAT(Check("xfs", {flag}), IsOk()) << flag;
  }
  EXPECT_THAT(ApplyMountFlagPolicy("ext4", {"noatime", "discard"}, false),
              IsOkAndHolds(ElementsAre("noatime", "discard")));
}

TEST(MountFlagPolicyTest, ReadOnlyModesAlwaysMountRo) {
  EXPECT_THAT(ApplyMountFlagPolicy("ext4", {"noatime"}, true),
              IsOkAndHolds(ElementsAre("noatime", "ro")));
  EXPECT_THAT(ApplyMountFlagPolicy("xfs", {"ro"}, true), IsOkAndHolds(ElementsAre("ro")));
  EXPECT_THAT(Check("ext4", {"rw"}, true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'rw' contradicts")));
}

// Each of these was accepted and passed straight to libmount (issue: defect 2).
TEST(MountFlagPolicyTest, RefusesDangerousFlagsNamingThem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"loop", "stack another device"},
      {"offset=0", "stack another device"},
      {"sizelimit=4096", "stack another device"},
      {"shared", "propagation"},
      {"rslave", "propagation"},
      {"make-private", "propagation"},
      {"bind", "propagation"},
      {"remount", "propagation"},
      {"X-mount.mkdir", "userspace-only"},
      {"x-systemd.automount", "userspace-only"},
      {"user", "userspace-only"},
      {"nofail", "userspace-only"},
      {"helper=foo", "userspace-only"},
      {"errors=panic", "panic the whole node"},
      {"noatime,remount", "several options"},
      {"", "is empty"},
      {"dax", "not an allowed ext4 mount option"},
      {"data=bogus", "not an allowed ext4 mount option"},
      {"commit=-1", "not an allowed ext4 mount option"},
      {"logbsize=1t", "not an allowed ext4 mount option"},
      {"context=system_u:object_r:x", "not an allowed ext4 mount option"},
      {"noatime ", "whitespace"},
      {"caf\xc3\xa9", "non-ASCII"},
      {std::string(300, 'a'), "too long"},
  };
  for (const auto& [flag, why] : cases) {
    absl::Status st = Check("ext4", {"noatime", flag});
    EXPECT_THAT(st, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(why))) << flag;
    if (flag.size() < 100) {
      EXPECT_THAT(std::string(st.message()), HasSubstr(flag)) << flag;
    }
  }
  EXPECT_THAT(Check("xfs", {"data=ordered"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("allowed xfs mount option")));
  EXPECT_THAT(Check("btrfs", {}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("btrfs")));
}

// A NUL or control byte inside a flag used to cut the option string before the appended "ro".
TEST(MountFlagPolicyTest, ControlBytesAreRefusedAndShownEscaped) {
  for (const std::string& flag :
       {std::string("noatime\0rw", 10), std::string("noatime\nrw"), std::string("a\x1b[2J")}) {
    absl::Status st = Check("ext4", {flag}, true);
    EXPECT_THAT(st, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("control byte")));
    for (char c : st.message()) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << flag;
  }
  EXPECT_THAT(Check("ext4", {std::string("noatime\0rw", 10)}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("noatime\\x00rw")));
}

}  // namespace
}  // namespace rbdcsi
