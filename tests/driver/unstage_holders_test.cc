// The seed incident reproduced for real: a volume staged under an rshared directory (as
// kubelet's is), and processes in other mount namespaces holding copies of its mount.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class UnstageHoldersTest : public ::testing::Test {
 protected:
  void SetUp() override { StartPlugin({}); }

  void StartPlugin(const std::vector<std::string>& flags) {
    // kubelet's directory is an rshared mount; make ours one too.
    ASSERT_EQ(mount(dir_.path().c_str(), dir_.path().c_str(), nullptr, MS_BIND, nullptr), 0);
    bound_ = true;
    ASSERT_EQ(mount(nullptr, dir_.path().c_str(), nullptr, MS_SHARED | MS_REC, nullptr), 0);
    std::filesystem::create_directories(staging());
    std::vector<std::string> all = {"--unstage-wait", "10"};
    all.insert(all.end(), flags.begin(), flags.end());
    plugin_ = std::make_unique<Plugin>(RBDCSI_BINARY, dir_.path(), all);
    std::string why;
    ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
  }

  void TearDown() override {
    holder_.reset();  // kills the holder if a test failed before it did
    if (plugin_) {
      EXPECT_EQ(plugin_->Stop(), 0) << plugin_->Stderr();
    }
    EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
    EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
    CleanUpUnder(dir_.path());
    if (bound_) umount2(dir_.path().c_str(), MNT_DETACH);
  }

  std::string staging() const { return dir_ / "kubelet/plugins/globalmount"; }

  void CreateAndStage() {
    absl::StatusOr<std::string> id = rbdcsi::CreateAndStage(*plugin_, "held", staging());
    ASSERT_THAT(id, IsOk());
    volume_id_ = *id;
  }

  grpc::Status Unstage() { return rbdcsi::Unstage(*plugin_, volume_id_, staging()); }

  void DeleteVolume() {
    csi::v1::DeleteVolumeRequest req;
    req.set_volume_id(volume_id_);
    csi::v1::DeleteVolumeResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = plugin_->controller().DeleteVolume(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }

  void StartHolder(const std::string& propagation, const std::string& script) {
    absl::StatusOr<std::unique_ptr<ChildProcess>> holder =
        StartNamespaceHolder(propagation, script, dir_.path(), std::chrono::seconds(10));
    ASSERT_THAT(holder, IsOk());
    holder_ = std::move(*holder);
  }

  void KillHolder() { ASSERT_TRUE(KillAndWait(*holder_, std::chrono::seconds(10))); }

  TempDir dir_{"holders"};
  bool bound_ = false;
  std::unique_ptr<Plugin> plugin_;
  std::unique_ptr<ChildProcess> holder_;
  std::string volume_id_;
};

bool Alive(ChildProcess& p) { return !p.Wait(std::chrono::milliseconds(0)).has_value(); }

long long MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

// node_exporter's case (issue 14): a private copy of the mount sits on the staging directory in
// another namespace. The host unmount cannot release it, but removing the directory makes the
// kernel detach it: the first unstage unmaps while the holder keeps running.
TEST_F(UnstageHoldersTest, PrivateCopyIsReleasedByRemovingTheStagingDirectory) {
  CreateAndStage();
  StartHolder("private", "true");
  const auto start = std::chrono::steady_clock::now();
  grpc::Status st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::cout << "private copy: first unstage to device released: " << MillisSince(start) << " ms\n";
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
  EXPECT_TRUE(Alive(*holder_));  // untouched
  EXPECT_THAT(ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/mountinfo")),
              Not(HasSubstr(staging())));  // its view of the path is empty
  EXPECT_FALSE(std::filesystem::exists(staging()));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "kubelet/plugins"));  // the parent stays
  EXPECT_THAT(plugin_->Stderr(), HasSubstr("removed the staging directory " + staging()));
  EXPECT_THAT(plugin_->Stderr(), HasSubstr(absl::StrCat("of pid ", holder_->pid(), " (sleep)")));
  EXPECT_TRUE(Unstage().ok());  // the retry works from nothing
  KillHolder();
  DeleteVolume();
}

// Holders the directory removal cannot release keep today's behaviour: refused at once, named,
// the directory left in place; once they go, the retry unmaps.
TEST_F(UnstageHoldersTest, OpenFileOnTheVolumeIsRefusedUntilItIsClosed) {
  CreateAndStage();
  StartHolder("private", "exec 3<" + staging());
  grpc::Status st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(absl::StrCat("pid ", holder_->pid(), " (sleep")));
  EXPECT_THAT(st.error_message(), HasSubstr("fd 3"));
  EXPECT_TRUE(std::filesystem::exists(staging()));
  const auto start = std::chrono::steady_clock::now();
  KillHolder();
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::cout << "open file: refused; holder gone to device released: " << MillisSince(start)
            << " ms\n";
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
  DeleteVolume();
}

TEST_F(UnstageHoldersTest, CwdInsideIsRefused) {
  CreateAndStage();
  StartHolder("private", "cd " + staging());
  grpc::Status st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("has its current directory"));
  EXPECT_TRUE(std::filesystem::exists(staging()));
  KillHolder();
  ASSERT_TRUE(Unstage().ok());
  DeleteVolume();
}

TEST_F(UnstageHoldersTest, ACopyBoundAtAnotherPathIsRefused) {
  CreateAndStage();
  const std::string elsewhere = dir_ / "elsewhere";
  std::filesystem::create_directories(elsewhere);
  StartHolder("private", "mount --bind " + staging() + " " + elsewhere);
  grpc::Status st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(elsewhere));
  EXPECT_TRUE(std::filesystem::exists(staging()));
  KillHolder();
  ASSERT_TRUE(Unstage().ok());
  DeleteVolume();
}

class NoReleaseTest : public UnstageHoldersTest {
 protected:
  void SetUp() override { StartPlugin({"--release-private-copies", "false"}); }
};

// With the release turned off a private copy is refused as before; kubelet removing the staging
// directory afterwards (as it does) releases it, and the retry unmaps from the volume record.
TEST_F(NoReleaseTest, PrivateCopyIsRefusedAndKubeletsRemovalLetsTheRetryUnmap) {
  CreateAndStage();
  StartHolder("private", "true");
  grpc::Status st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  const std::string& msg = st.error_message();
  EXPECT_THAT(msg, HasSubstr("is still in use and was not unmapped"));
  EXPECT_THAT(msg, HasSubstr(absl::StrCat("pid ", holder_->pid(), " (sleep")));
  EXPECT_THAT(msg, HasSubstr("propagation private"));
  EXPECT_THAT(msg, HasSubstr(absl::StrCat("mount namespace ", MountNamespaceOf(holder_->pid()))));
  EXPECT_THAT(msg, Not(HasSubstr("waited")));        // failed fast: no wait for a private copy
  EXPECT_THAT(msg, Not(HasSubstr("[")));             // never a byte array
  EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());  // the host's own mount is gone
  EXPECT_TRUE(std::filesystem::exists(staging()));

  ASSERT_EQ(rmdir(staging().c_str()), 0);  // kubelet cleans up
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
  EXPECT_TRUE(Alive(*holder_));
  KillHolder();
  DeleteVolume();
}

// HostToContainer: the copy is a slave of the staging mount, so the host unmount takes it along.
TEST_F(UnstageHoldersTest, SlaveNamespaceHolderIsReleasedByTheHostUnmount) {
  CreateAndStage();
  StartHolder("slave", "true");
  const auto start = std::chrono::steady_clock::now();
  grpc::Status st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::cout << "slave copy: first unstage to device released: " << MillisSince(start) << " ms\n";
  EXPECT_TRUE(std::filesystem::exists(staging()));  // nothing to release: the directory stays
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
  KillHolder();
  DeleteVolume();
}

// A process in a slave namespace with its cwd inside the propagated copy makes the host
// unmount itself fail with EBUSY. Unstage names it and never unmounts lazily.
TEST_F(UnstageHoldersTest, BusyPropagatedCopyBlocksTheUnmountAndIsNamed) {
  CreateAndStage();
  StartHolder("slave", "cd " + staging());
  grpc::Status st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(absl::StrCat("pid ", holder_->pid())));
  EXPECT_THAT(st.error_message(), HasSubstr("sleep"));
  EXPECT_THAT(st.error_message(), HasSubstr("is still mounted"));
  // Still mounted on the host: no lazy unmount hid the holder.
  EXPECT_THAT(MountsUnder(dir_.path()), ::testing::Contains(staging()));
  KillHolder();
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
  DeleteVolume();
}

// For copies the directory removal does not reach (here: the removal turned off).
class ReclaimTest : public UnstageHoldersTest {
 protected:
  void SetUp() override {
    StartPlugin({"--reclaim-stale-mounts", "sleep", "--release-private-copies", "false"});
  }
};

TEST_F(ReclaimTest, AllowlistedHolderHasItsStaleCopyUnmountedAndIsLogged) {
  CreateAndStage();
  StartHolder("private", "true");
  grpc::Status st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
  EXPECT_THAT(plugin_->Stderr(), HasSubstr("reclaimed stale mount " + staging()));
  EXPECT_THAT(plugin_->Stderr(), HasSubstr(absl::StrCat("of pid ", holder_->pid(), " (sleep)")));
  // The holder lives on; only its stale copy is gone.
  EXPECT_FALSE(holder_->Wait(std::chrono::milliseconds(0)).has_value());
  EXPECT_THAT(ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/mountinfo")),
              Not(HasSubstr(staging())));
  DeleteVolume();
}

}  // namespace
}  // namespace rbdcsi
