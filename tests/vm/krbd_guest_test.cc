// krbd on the guest's real rbd module (tests/vm/guest_volume_test.h): the lifecycle, the seed
// incident and its variants on a real /dev/rbdN, and one writer per image.
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/vm/guest_volume_test.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

using KrbdGuestTest = GuestVolumeTest;

TEST_F(KrbdGuestTest, LifecycleOnTheRealModuleKeepsTheData) { Lifecycle(); }
TEST_F(KrbdGuestTest, SeedIncidentPrivateCopyIsReleasedOnTheFirstUnstage) { SeedIncident(); }
TEST_F(KrbdGuestTest, AVolumeInARadosNamespaceIsMappedOnceAndUnmapped) { NamespacedLifecycle(); }

// For operators who turn the release off: the private copy is refused as before, named, and the
// device stays mapped; once kubelet has removed the staging directory (as it does), the retry
// unmaps while the holder still runs.
TEST_F(KrbdGuestTest, WithoutTheReleaseTheSeedIncidentIsRefusedUntilKubeletRemovesTheDir) {
  RestartPlugin({"--release-private-copies", "false"});
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string device = MappedDevice();
  StartHolder("private", "true");
  st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(absl::StrCat("pid ", holder_->pid(), " (sleep")));
  EXPECT_THAT(st.error_message(), HasSubstr("propagation private"));
  EXPECT_THAT(st.error_message(), HasSubstr(device));
  EXPECT_THAT(st.error_message(), Not(HasSubstr("waited")));  // no wait for a private copy
  EXPECT_EQ(MappedDevice(), device);  // refused: still mapped, never a forced unmap

  ASSERT_TRUE(std::filesystem::remove(staging()));  // kubelet cleans up
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
  EXPECT_EQ(ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/comm")), "sleep\n");
  KillHolder();
}

// A holder with a file open on the volume (in its own private namespace) is refused and named;
// once it closes the file (exits), the retry unmaps.
TEST_F(KrbdGuestTest, OpenFileHolderIsRefusedUntilItCloses) {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  { std::ofstream(staging() + "/file") << "x\n"; }
  StartHolder("private", "exec 3<" + staging() + "/file");
  st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(absl::StrCat("pid ", holder_->pid())));
  EXPECT_THAT(st.error_message(), HasSubstr("open"));
  KillHolder();
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
}

// A copy that is a slave of the staging mount goes with the host unmount: unstage waits for
// nothing and succeeds while the holder still runs.
TEST_F(KrbdGuestTest, SlaveCopyIsReleasedAndUnstageSucceeds) {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  StartHolder("slave", "true");
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
  EXPECT_EQ(ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/comm")), "sleep\n");
  KillHolder();
}

// One writer per image: a second plugin instance (another "node", with its own state directory)
// staging the same image read-write with krbd is refused, naming the first's client; once the
// first has unstaged, the second succeeds. Both run on this one kernel, so the first stages
// through rbd-nbd (a client of its own, which krbd's device list does not show); the second
// would otherwise find the first's /dev/rbdN and take it for its own earlier mapping.
TEST_F(KrbdGuestTest, ASecondWriterIsRefusedNamingTheFirstsClient) {
  grpc::Status st = StageOn(*plugin_, staging(), "nbd");
  ASSERT_TRUE(st.ok()) << st.error_message();
  const nlohmann::json status =
      nlohmann::json::parse(Rbd({"status", "rbd/" + image(), "--format", "json"}), nullptr, false);
  ASSERT_TRUE(status.is_object() && status["watchers"].size() == 1u) << status.dump();
  const std::string client = status["watchers"][0].value("address", "");
  ASSERT_FALSE(client.empty());

  TempDir node2{"vm-node2"};
  const std::string staging2 = node2 / "kubelet/globalmount";  // under its --kubelet-dir
  std::filesystem::create_directories(staging2);
  absl::Cleanup last_resort = [&] { CleanUpUnder(node2.path()); };
  Plugin other(RBDCSI_BINARY, node2.path(),
               {"--no-controller", "--rbd-program", "rbd", "--key-dir", node2 / "keys"});
  std::string why;
  ASSERT_TRUE(other.WaitReady(&why)) << why;
  st = StageOn(other, staging2, "krbd");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(client));
  EXPECT_EQ(MappedDevice(), "");  // krbd mapped nothing
  EXPECT_THAT(MountsUnder(node2.path()), IsEmpty());

  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = StageOn(other, staging2, "krbd");
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_NE(MappedDevice(), "");
  st = UnstageOn(other, staging2);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(other.Stop(), 0) << other.Stderr();
}

}  // namespace
}  // namespace rbdcsi
