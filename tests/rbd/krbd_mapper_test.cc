// The krbd mapper's map and unmap against a scripted rbd CLI: argv, the key file (0600, private
// directory, removed after the call, never in argv or errors), rbd's errors, single writers.
#include "rbd/krbd_mapper.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rbd/krbd_fixture.h"
#include "tests/rbd/printers.h"
#include "tests/support/scripted_command_runner.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

TEST_F(KrbdMapperTest, MapRunsRbdWithKeyInAPrivateFile) {
  runner_.Answer(0, "/dev/rbd0\n", "", RecordKeyFile());
  absl::StatusOr<MappedDevice> device = mapper_->Map(Options());
  ASSERT_THAT(device, IsOk());
  EXPECT_EQ(*device, (MappedDevice{"/dev/rbd0", 252, 0, {"replicapool", "csi-vol-1"}}));

  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0],
              ElementsAre("rbd", "device", "map", "replicapool/csi-vol-1", "--id", "csi-rbd-node",
                          "-m", kMonitors, "--keyfile", seen_.path));
  EXPECT_THAT(seen_.path, StartsWith(dir_.path() + "/run/keys/"));
  EXPECT_TRUE(seen_.exists);
  EXPECT_EQ(seen_.file_mode, 0600u);
  EXPECT_EQ(seen_.dir_mode, 0700u);
  EXPECT_EQ(seen_.content, kKey);
  ExpectKeyNowhereInArgv();
  ExpectKeyFileGone();
}

TEST_F(KrbdMapperTest, MapReadOnlyAndCustomProgram) {
  KrbdMapperOptions options;
  options.rbd_program = "/opt/ceph/bin/rbd";
  options.key_dir = dir_.path();
  options.stat_device = [](const std::string&) { return DeviceNumber{252, 32}; };
  options.udev_running = [] { return true; };
  KrbdMapper mapper(&runner_, options);
  runner_.Answer(0, "/dev/rbd2\n", "");
  absl::StatusOr<MappedDevice> device = mapper.Map(Options(/*read_only=*/true));
  ASSERT_THAT(device, IsOk());
  EXPECT_EQ(device->minor, 32u);
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_EQ(runner_.calls()[0].front(), "/opt/ceph/bin/rbd");
  EXPECT_EQ(runner_.calls()[0].back(), "--read-only");
}

TEST_F(KrbdMapperTest, MapOfMissingImageIsNotFoundAndRemovesTheKey) {
  runner_.Answer(2, "In some cases useful info is found in syslog - try \"dmesg | tail\".\n",
                 "rbd: sysfs write failed\nrbd: map failed: (2) No such file or directory\n",
                 RecordKeyFile());
  absl::StatusOr<MappedDevice> device = mapper_->Map(Options());
  EXPECT_THAT(device, StatusIs(absl::StatusCode::kNotFound,
                               AllOf(HasSubstr("replicapool/csi-vol-1"),
                                     HasSubstr("rbd: sysfs write failed; rbd: map failed: (2) "
                                               "No such file or directory"),
                                     Not(HasSubstr("\n")), Not(HasSubstr(kKey)))));
  ExpectKeyFileGone();
}

TEST_F(KrbdMapperTest, MapTimeoutIsUnavailable) {
  runner_.Answer(110, "", "rbd: sysfs write failed\nrbd: map failed: (110) Connection timed out\n",
                 RecordKeyFile());
  EXPECT_THAT(mapper_->Map(Options()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("(110) Connection timed out")));
  ExpectKeyFileGone();
}

TEST_F(KrbdMapperTest, OtherMapFailuresAreInternalWithRbdsWords) {
  runner_.Answer(13, "", "rbd: sysfs write failed\r\nrbd: map failed: (13) Permission denied\n");
  EXPECT_THAT(mapper_->Map(Options()),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("rbd: map failed: (13) Permission denied (exit status 13)"),
                             Not(HasSubstr("\r")))));
}

// rbd (or a library under it) echoing the key: whatever its bytes or length, no part of it
// reaches the error, not even with its odd bytes replaced.
TEST_F(KrbdMapperTest, EchoedSecretsNeverReachTheError) {
  const std::vector<std::string> keys = {
      "AQ\tB\rC\xc3\xa9"
      "D\x01==",
      "abc", "k", "AQ \x7f\xff"};
  for (const std::string& key : keys) {
    MapOptions options = Options();
    options.key = key;
    runner_.Answer(1, "", "rbd: bad key '" + key + "' for user csi-rbd-node\n");
    runner_.Answer(0, "no device here: " + key + "\n", "");
    for (int i = 0; i < 2; ++i) {
      absl::Status st = mapper_->Map(options).status();
      ASSERT_FALSE(st.ok());
      const std::string message(st.message());
      EXPECT_THAT(message, HasSubstr("<redacted>")) << message;
      std::string sanitised = key;
      for (char& c : sanitised) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f) c = '?';
      }
      EXPECT_THAT(message, AllOf(Not(HasSubstr(key)), Not(HasSubstr(sanitised))));
      EXPECT_THAT(message, Not(HasSubstr("csi-rbd-node")));  // the userID is a secret too
    }
  }
}

TEST_F(KrbdMapperTest, AUserStartingWithADashIsRefusedWithoutEchoingIt) {
  MapOptions options = Options();
  options.user = "--sentinel-user";
  EXPECT_THAT(mapper_->Map(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("cephx user starts with '-'"), Not(HasSubstr("sentinel")))));
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(KrbdMapperTest, RunnerFailuresStillRemoveTheKey) {
  runner_.Answer(absl::DeadlineExceededError("rbd did not finish within 120000 ms"),
                 RecordKeyFile());
  EXPECT_THAT(mapper_->Map(Options()),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("may still")));
  ExpectKeyFileGone();

  runner_.Answer(absl::NotFoundError("program not found: rbd"));
  EXPECT_THAT(mapper_->Map(Options()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ceph-common")));
}

TEST_F(KrbdMapperTest, MapUnmapsAgainWhenTheDeviceCannotBeExamined) {
  runner_.Answer(0, "/dev/rbd7\n", "");
  runner_.Answer(0, "", "");
  EXPECT_THAT(mapper_->Map(Options()),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("/dev/rbd7"), HasSubstr("unmapped it again"))));
  ASSERT_EQ(runner_.calls().size(), 2u);
  EXPECT_THAT(runner_.calls()[1], ElementsAre("rbd", "device", "unmap", "/dev/rbd7"));
}

TEST_F(KrbdMapperTest, MapWithoutDeviceOnStdoutIsInternal) {
  runner_.Answer(0, "\n", "rbd: warning: something\n");
  EXPECT_THAT(mapper_->Map(Options()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("printed no device")));
}

TEST_F(KrbdMapperTest, MapValidatesArgumentsBeforeRunningAnything) {
  struct Case {
    std::function<void(MapOptions&)> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](MapOptions& o) { o.key.clear(); }, "no cephx key"},
      {[](MapOptions& o) { o.key = "abc\ndef"; }, "line break"},
      {[](MapOptions& o) { o.image.pool = "a/b"; }, "pool name"},
      {[](MapOptions& o) { o.image.image = "img@snap"; }, "image name"},
      {[](MapOptions& o) { o.image.pool = "--help"; }, "starts with '-'"},
      {[](MapOptions& o) { o.image.rados_namespace = "ns/x"; }, "rados namespace"},
      {[](MapOptions& o) { o.image.rados_namespace = "-ns"; }, "rados namespace"},
      {[](MapOptions& o) { o.user.clear(); }, "cephx user is empty"},
      {[](MapOptions& o) { o.user = "a b"; }, "cephx user"},
      {[](MapOptions& o) { o.monitors.clear(); }, "monitor list is empty"},
  };
  for (const Case& c : cases) {
    MapOptions options = Options();
    c.change(options);
    EXPECT_THAT(mapper_->Map(options), StatusIs(absl::StatusCode::kInvalidArgument,
                                                AllOf(HasSubstr(c.message), Not(HasSubstr(kKey)))));
  }
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(KrbdMapperTest, UnmapRunsRbdDeviceUnmap) {
  runner_.Answer(0, "", "");
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/rbd0", 252, 0, {}}), IsOk());
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("rbd", "device", "unmap", "/dev/rbd0"));
}

TEST_F(KrbdMapperTest, UnmapOfBusyDeviceIsBusyWithRbdsWords) {
  runner_.Answer(16, "",
                 "rbd: sysfs write failed\nrbd: unmap failed: (16) Device or resource busy\n");
  absl::Status status = mapper_->Unmap(MappedDevice{"/dev/rbd0", 252, 0, {}});
  EXPECT_TRUE(IsBusy(status)) << status;
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("/dev/rbd0"),
                             HasSubstr("rbd: unmap failed: (16) Device or resource busy"))));
}

TEST_F(KrbdMapperTest, UnmapOfWhatIsNotMappedIsOk) {
  const std::vector<std::pair<int, std::string>> answers = {
      {22, "rbd: '/dev/rbd0' is not a block device\nrbd: unmap failed: (22) Invalid argument\n"},
      {22, "rbd: '/dev/rbd0' is not an rbd device\nrbd: unmap failed: (22) Invalid argument\n"},
      {22,
       "rbd: rbd/img: not a mapped image or snapshot\nrbd: unmap failed: (22) Invalid "
       "argument\n"},
      {2, "rbd: sysfs write failed\nrbd: unmap failed: (2) No such file or directory\n"},
  };
  for (const auto& [code, err] : answers) {
    runner_.Answer(code, "", err);
    EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/rbd0", 252, 0, {}}), IsOk()) << err;
  }
}

TEST_F(KrbdMapperTest, OtherUnmapFailuresAreInternal) {
  runner_.Answer(22, "", "rbd: unmap requires either image name or device path\n");
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/rbd0", 252, 0, {}}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("unmap requires")));
}

TEST_F(KrbdMapperTest, UnmapRejectsPathsRbdWouldReadAsImageSpecs) {
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"rbd0", 0, 0, {}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/dev")));
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(KrbdMapperTest, UnmapWithImageChecksTheDeviceStillMapsIt) {
  runner_.Answer(0, Testdata("device_list.json"), "");
  // /dev/rbd1 now maps csi-vol-4e5f6a7b: the device name was reused, leave it alone.
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/rbd1", 252, 16, {"replicapool", "csi-vol-1"}}),
              IsOk());
  ASSERT_EQ(runner_.calls().size(), 1u);

  runner_.Answer(0, Testdata("device_list.json"), "");
  runner_.Answer(0, "", "");
  EXPECT_THAT(
      mapper_->Unmap(MappedDevice{"/dev/rbd1", 252, 16, {"replicapool", "csi-vol-4e5f6a7b"}}),
      IsOk());
  ASSERT_EQ(runner_.calls().size(), 3u);
  EXPECT_THAT(runner_.calls()[1], ElementsAre("rbd", "device", "list", "--format", "json"));
  EXPECT_THAT(runner_.calls()[2], ElementsAre("rbd", "device", "unmap", "/dev/rbd1"));
}

TEST_F(KrbdMapperTest, RefreshCapacityIsANoOp) {
  EXPECT_THAT(mapper_->RefreshCapacity(MappedDevice{"/dev/rbd0", 252, 0, {}}), IsOk());
  EXPECT_THAT(runner_.calls(), IsEmpty());
  EXPECT_EQ(mapper_->Name(), "krbd");
}

TEST_F(KrbdMapperTest, WithoutUdevMapAndUnmapPassNoudev) {
  udev_ = false;
  runner_.Answer(0, "/dev/rbd0\n", "");
  ASSERT_THAT(mapper_->Map(Options(/*read_only=*/true)), IsOk());
  runner_.Answer(0, "", "");
  ASSERT_THAT(mapper_->Unmap(MappedDevice{"/dev/rbd0", 252, 0, {}}), IsOk());
  ASSERT_EQ(runner_.calls().size(), 2u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("rbd", "device", "map", "replicapool/csi-vol-1",
                                              "--id", "csi-rbd-node", "-m", kMonitors, "--keyfile",
                                              ::testing::_, "--read-only", "-o", "noudev"));
  EXPECT_THAT(runner_.calls()[1],
              ElementsAre("rbd", "device", "unmap", "-o", "noudev", "/dev/rbd0"));
}

TEST_F(KrbdMapperTest, ASingleWriterMapChecksWatchersThenTakesTheExclusiveLock) {
  runner_.Answer(0, "{\"watchers\":[]}\n", "", RecordKeyFile());
  runner_.Answer(0, "/dev/rbd0\n", "");
  MapOptions options = Options();
  options.single_writer = true;
  ASSERT_THAT(mapper_->Map(options), IsOk());
  ASSERT_EQ(runner_.calls().size(), 2u);
  EXPECT_THAT(runner_.calls()[0],
              ElementsAre("rbd", "status", "replicapool/csi-vol-1", "--format", "json", "--id",
                          "csi-rbd-node", "-m", kMonitors, "--keyfile", seen_.path));
  EXPECT_EQ(seen_.content, kKey);
  EXPECT_THAT(runner_.calls()[1],
              ElementsAre("rbd", "device", "map", "replicapool/csi-vol-1", "--id", "csi-rbd-node",
                          "-m", kMonitors, "--keyfile", ::testing::_, "-o", "exclusive"));
  ExpectKeyNowhereInArgv();
  ExpectKeyFileGone();
}

TEST_F(KrbdMapperTest, ASingleWriterMapIsRefusedNamingTheWatcher) {
  udev_ = false;
  runner_.Answer(0, Testdata("status_one_watcher.json"), "", RecordKeyFile());
  MapOptions options = Options();
  options.single_writer = true;
  EXPECT_THAT(
      mapper_->Map(options),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("client.4109 at 127.0.0.1:0/3182436296"), HasSubstr("blocklist"))));
  EXPECT_EQ(runner_.calls().size(), 1u);  // never mapped
  ExpectKeyFileGone();
}

TEST_F(KrbdMapperTest, TheExclusiveLockHeldElsewhereIsAFailedPrecondition) {
  udev_ = false;
  runner_.Answer(0, "{\"watchers\":[]}", "");
  // What rbd printed in the guest when another client held the lock.
  runner_.Answer(30, "In some cases useful info is found in syslog - try \"dmesg | tail\".\n",
                 "rbd: sysfs write failed\nrbd: map failed: (30) Read-only file system\n");
  MapOptions options = Options();
  options.single_writer = true;
  EXPECT_THAT(mapper_->Map(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("exclusive lock")));
  EXPECT_THAT(runner_.calls()[1].back(), "noudev,exclusive");
}

}  // namespace
}  // namespace rbdcsi
