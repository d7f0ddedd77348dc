// DESIGN.md step 5 against a fake /proc, a fake clock and scripted release watchers (no
// processes, no wall clock): fail fast for private holders, wait for holders that let go by
// themselves, reclaim only allowlisted ones (through a fake NamespaceUnmounter), and never count
// the host's own staging mount as a holder when unmounting it.
#include "driver/holder_busy_handler.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/testing/fake_host_env.h"
#include "gtest/gtest.h"
#include "holders/testing/fake_ns_unmount.h"
#include "holders/testing/fake_procfs.h"
#include "holders/testing/fake_release_watcher.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kHostNs = 4026531840;
constexpr uint64_t kPodNs = 4026532871;
constexpr uint64_t kThreadNs = 4026532999;
constexpr char kStaging[] = "/var/lib/kubelet/plugins/kubernetes.io/csi/rbd/abc/globalmount";

class HolderBusyHandlerTest : public ::testing::Test {
 protected:
  HolderBusyHandlerTest() : scanner_(fake_), watchers_(&env_) {
    fake_.Add(1, kHostNs).comm = "systemd";
    fake_.self = 1;
    fake_.mountinfo[kHostNs] = "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n";
    record_.volume_id = "pvc-1";
    record_.device = {"/dev/rbd3", 250, 0, {"rbd", "img"}};
    record_.staging_path = kStaging;
    record_.staging_peer_group = 7;
  }

  // A pod process `pid` whose namespace holds a copy of the device's mount with `tags`.
  void AddPodHolder(pid_t pid, const std::string& comm, const std::string& tags) {
    FakeProcFs::Process& p = fake_.Add(pid, kPodNs);
    p.comm = comm;
    p.cgroup =
        "0::/kubepods.slice/kubepods-besteffort.slice/"
        "kubepods-besteffort-pod7c1e2f3a_1b2c_4d5e_8f90_123456789abc.slice/"
        "cri-containerd-3f2a9c7f19550d1c6a3b5e7d9f0a2c4e6b8d0f1a3c5e7a9b1d3f5a7c9e1b3d5f.scope\n";
    fake_.mountinfo[kPodNs] =
        absl::StrCat("900 800 0:55 / / rw - overlay overlay rw\n", "901 900 250:0 / /host",
                     kStaging, " rw", tags.empty() ? "" : " ", tags, " - ext4 /dev/rbd3 rw\n");
  }

  HolderBusyHandler Handler(std::chrono::milliseconds budget, std::set<std::string> reclaim = {}) {
    return HolderBusyHandler({budget, std::move(reclaim)}, &scanner_, &unmounter_, &env_,
                             NullMetrics(), watchers_.Factory());
  }

  absl::Status OnBusy(HolderBusyHandler& handler, int attempt = 0,
                      BusyStage stage = BusyStage::kUnmap) {
    return handler.OnBusy(record_, stage, BusyError("(16) Device or resource busy"), attempt,
                          since_);
  }

  // The host's own staging mount of the device (mount id 500, peer group 7).
  void AddHostStagingMount() {
    fake_.mountinfo[kHostNs] +=
        absl::StrCat("500 22 250:0 / ", kStaging, " rw,relatime shared:7 - ext4 /dev/rbd3 rw\n");
  }

  FakeProcFs fake_;
  HolderScanner scanner_;
  FakeNamespaceUnmounter unmounter_;
  FakeHostEnv env_;
  FakeReleaseWatchers watchers_;
  const std::chrono::steady_clock::time_point since_ = env_.Now();  // the operation's start
  VolumeRecord record_;
};

TEST_F(HolderBusyHandlerTest, PrivateHolderFailsAtOnceNamingItAndTheFix) {
  AddPodHolder(4242, "node_exporter", "");
  HolderBusyHandler handler = Handler(std::chrono::seconds(30));
  const auto start = env_.Now();
  absl::Status st = OnBusy(handler);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(st.message());
  EXPECT_THAT(msg, HasSubstr("volume pvc-1: /dev/rbd3 (250:0) is still in use"));
  EXPECT_THAT(msg, HasSubstr("pid 4242 (node_exporter, container 3f2a9c7f1955"));
  EXPECT_THAT(msg, HasSubstr("pod 7c1e2f3a-1b2c-4d5e-8f90-123456789abc"));
  EXPECT_THAT(msg, HasSubstr("mount namespace 4026532871"));
  EXPECT_THAT(msg, HasSubstr("propagation private"));
  EXPECT_THAT(msg, HasSubstr("mountPropagation: HostToContainer"));
  EXPECT_THAT(msg, Not(HasSubstr("waited")));
  // Did not spend its budget: no wait at all.
  EXPECT_EQ(watchers_.waits(), 0);
  EXPECT_EQ(env_.Now(), start);
  EXPECT_TRUE(unmounter_.calls().empty());  // no reclaim without an allowlist
}

// A pending holder (a slave of the staging mount's peer group) is waited for; the wait ends
// with the holder's exit, long before the budget, and the caller is told to try again.
TEST_F(HolderBusyHandlerTest, PendingHolderIsWaitedForAndItsExitWakesTheWait) {
  AddPodHolder(4343, "sleep", "master:7");
  watchers_.ScriptWait("pid 4343 exited");
  HolderBusyHandler handler = Handler(std::chrono::seconds(30));
  EXPECT_THAT(OnBusy(handler), IsOk());  // "try again now", not the timeout's FAILED_PRECONDITION
  EXPECT_EQ(watchers_.waits(), 1);
  EXPECT_EQ(watchers_.watched(), std::vector<pid_t>{4343});
}

TEST_F(HolderBusyHandlerTest, PendingHolderThatStaysFailsAfterTheBudgetSayingItWaited) {
  AddPodHolder(4343, "sleep", "master:7");
  watchers_.ScriptWait(std::nullopt);  // the budget runs out
  HolderBusyHandler handler = Handler(std::chrono::milliseconds(100));
  absl::Status st = OnBusy(handler);
  EXPECT_THAT(st,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("propagation pending")));
  EXPECT_THAT(std::string(st.message()), HasSubstr("waited 100 ms"));
  // The budget is one per operation: a later busy result of the same call does not wait again.
  EXPECT_THAT(OnBusy(handler, 1), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(watchers_.waits(), 1);
}

TEST_F(HolderBusyHandlerTest, NoHolderFoundMeansRetryAFewTimesThenSaySo) {
  HolderBusyHandler handler = Handler(std::chrono::seconds(1));
  EXPECT_THAT(OnBusy(handler, 0), IsOk());
  EXPECT_THAT(OnBusy(handler, 2), IsOk());
  EXPECT_THAT(OnBusy(handler, 3),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no holder was found")));
}

TEST_F(HolderBusyHandlerTest, AllowlistedHolderIsReclaimedInItsOwnNamespace) {
  AddPodHolder(4242, "node_exporter", "");
  HolderBusyHandler handler = Handler(std::chrono::seconds(1), {"node_exporter"});
  EXPECT_THAT(OnBusy(handler), IsOk());
  const std::vector<FakeNamespaceUnmounter::Call> calls = unmounter_.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].pid, 4242);
  EXPECT_EQ(calls[0].tid, 0);
  EXPECT_EQ(calls[0].ns_inode, kPodNs);
  EXPECT_EQ(calls[0].mount_id, 901);
  EXPECT_EQ(calls[0].mount_point, std::string("/host") + kStaging);
  EXPECT_EQ(handler.reclaims(), 1);
}

// Only one thread of the process is in the holding namespace: the unmount must go through that
// thread's namespace, not the process's.
TEST_F(HolderBusyHandlerTest, ThreadHolderIsReclaimedThroughItsThread) {
  FakeProcFs::Process& p = fake_.Add(4300, kHostNs);
  p.comm = "node_exporter";
  p.threads[4301] = kThreadNs;
  fake_.mountinfo[kThreadNs] = "700 600 250:0 / /mnt/copy rw - ext4 /dev/rbd3 rw\n";
  HolderBusyHandler handler = Handler(std::chrono::seconds(1), {"node_exporter"});
  EXPECT_THAT(OnBusy(handler), IsOk());
  const std::vector<FakeNamespaceUnmounter::Call> calls = unmounter_.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].pid, 4300);
  EXPECT_EQ(calls[0].tid, 4301);
  EXPECT_EQ(calls[0].ns_inode, kThreadNs);
  EXPECT_EQ(calls[0].mount_id, 700);
  EXPECT_EQ(calls[0].mount_point, "/mnt/copy");
}

TEST_F(HolderBusyHandlerTest, HolderNotOnTheAllowlistIsNotReclaimed) {
  AddPodHolder(4242, "fluentd", "");
  HolderBusyHandler handler = Handler(std::chrono::seconds(1), {"node_exporter"});
  EXPECT_THAT(OnBusy(handler),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("fluentd")));
  EXPECT_TRUE(unmounter_.calls().empty());
  EXPECT_EQ(handler.reclaims(), 0);
}

TEST_F(HolderBusyHandlerTest, BusyReclaimFallsBackToTheReport) {
  AddPodHolder(4242, "node_exporter", "");
  unmounter_.Answer(ErrnoToStatus(EBUSY, "cannot unmount /host/x"));
  HolderBusyHandler handler = Handler(std::chrono::seconds(1), {"node_exporter"});
  EXPECT_THAT(OnBusy(handler),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("node_exporter")));
  EXPECT_EQ(unmounter_.calls().size(), 1u);
  EXPECT_EQ(handler.reclaims(), 0);
}

TEST_F(HolderBusyHandlerTest, RefusedReclaimFallsBackToTheReport) {
  AddPodHolder(4242, "node_exporter", "");
  unmounter_.Answer(absl::FailedPreconditionError("that task is now in mount namespace 1"));
  HolderBusyHandler handler = Handler(std::chrono::seconds(1), {"node_exporter"});
  EXPECT_THAT(OnBusy(handler), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("mount namespace 4026532871")));
  EXPECT_EQ(handler.reclaims(), 0);
}

// The staging mount whose unmount was refused is not a holder of itself: with nothing else
// holding, the handler neither waits (it is "pending") nor names it.
TEST_F(HolderBusyHandlerTest, UnmountStageDoesNotCountTheStagingMountItself) {
  AddHostStagingMount();
  record_.staging_mount_id = 500;
  HolderBusyHandler handler = Handler(std::chrono::seconds(30));
  EXPECT_THAT(OnBusy(handler, 0, BusyStage::kUnmount), IsOk());  // quick retry, no wait
  EXPECT_EQ(watchers_.waits(), 0);
  absl::Status st = OnBusy(handler, 3, BusyStage::kUnmount);
  EXPECT_THAT(st,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no holder was found")));
  EXPECT_THAT(std::string(st.message()), HasSubstr("is still mounted"));
  EXPECT_THAT(std::string(st.message()), Not(HasSubstr("waited")));
}

TEST_F(HolderBusyHandlerTest, UnmountStageDropsOnlyTheStagingMount) {
  AddHostStagingMount();
  // Another host mount of the device (e.g. a leftover publish bind mount) still holds it.
  fake_.mountinfo[kHostNs] += "501 22 250:0 / /var/lib/kubelet/pods/x/volumes/v rw - ext4 x rw\n";
  record_.staging_mount_id = 500;
  HolderBusyHandler handler = Handler(std::chrono::milliseconds(100));
  absl::Status st = OnBusy(handler, 0, BusyStage::kUnmount);
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kFailedPrecondition,
                           HasSubstr("/var/lib/kubelet/pods/x/volumes/v")));
  EXPECT_THAT(std::string(st.message()), Not(HasSubstr(absl::StrCat("at ", kStaging))));
}

// Records written before the mount id was kept: the staging path identifies the mount.
TEST_F(HolderBusyHandlerTest, UnmountStageWithoutMountIdMatchesTheStagingPath) {
  AddHostStagingMount();
  record_.staging_mount_id = 0;
  HolderBusyHandler handler = Handler(std::chrono::seconds(30));
  EXPECT_THAT(OnBusy(handler, 3, BusyStage::kUnmount),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no holder was found")));
}

// When unmapping, a host mount of the device is a real holder.
TEST_F(HolderBusyHandlerTest, UnmapStageStillCountsAHostMount) {
  AddHostStagingMount();
  record_.staging_mount_id = 500;
  HolderBusyHandler handler = Handler(std::chrono::milliseconds(100));
  EXPECT_THAT(OnBusy(handler, 3, BusyStage::kUnmap),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(kStaging)));
}

// Issue 14: copies of the staging mount on the staging directory are released by removing
// the (empty) directory after the host unmount; the unmap is then retried.
TEST_F(HolderBusyHandlerTest, CopiesOnTheStagingDirAreReleasedByRemovingIt) {
  AddPodHolder(4242, "node_exporter", "");  // at /host<staging>, a whole copy
  env_.AddFile(kStaging, FileInfo{FileType::kDirectory, 0, {}});
  HolderBusyHandler handler = Handler(std::chrono::seconds(30));
  EXPECT_THAT(OnBusy(handler), IsOk());
  EXPECT_EQ(env_.removed(), std::vector<std::string>{kStaging});
  EXPECT_FALSE(env_.Exists(kStaging));
  EXPECT_EQ(watchers_.waits(), 0);
}

TEST_F(HolderBusyHandlerTest, TheReleaseNeedsAStagingDirAndOnlyCopiesOnIt) {
  env_.AddFile(kStaging, FileInfo{FileType::kDirectory, 0, {}});
  // A copy bound at another path: removing the staging dir cannot detach it.
  fake_.Add(4242, kPodNs).comm = "agent";
  fake_.mountinfo[kPodNs] =
      "900 800 0:55 / / rw - overlay overlay rw\n"
      "901 900 250:0 / /data/copy rw - ext4 x rw\n";
  HolderBusyHandler handler = Handler(std::chrono::seconds(30));
  EXPECT_THAT(OnBusy(handler), StatusIs(absl::StatusCode::kFailedPrecondition));
  // While unmounting (the host's own mount is still there) nothing is removed either.
  AddPodHolder(4242, "node_exporter", "");
  EXPECT_THAT(OnBusy(handler, 0, BusyStage::kUnmount),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(env_.removed().empty());
  EXPECT_TRUE(env_.Exists(kStaging));
}

TEST_F(HolderBusyHandlerTest, TheReleaseCanBeTurnedOffAndNeedsTheDirectory) {
  AddPodHolder(4242, "node_exporter", "");
  HolderBusyHandler no_dir = Handler(std::chrono::seconds(30));
  EXPECT_THAT(OnBusy(no_dir),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("propagation private")));
  env_.AddFile(kStaging, FileInfo{FileType::kDirectory, 0, {}});
  HolderBusyHandler off({std::chrono::seconds(30), {}, /*release_private_copies=*/false}, &scanner_,
                        &unmounter_, &env_, NullMetrics(), watchers_.Factory());
  EXPECT_THAT(OnBusy(off), StatusIs(absl::StatusCode::kFailedPrecondition));
  env_.SetBusy(kStaging, true);  // rmdir refused (a mount point here): no release, the report
  EXPECT_THAT(OnBusy(no_dir), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(env_.Exists(kStaging));
}

// rbd-nbd's daemon keeps its /dev/nbdN open while it serves it: the mapper names it as the
// device's server, and the handler counts it as no holder (else unstage refused forever, naming
// rbd-nbd); a private copy on the staging dir is then released as for any other device.
TEST_F(HolderBusyHandlerTest, TheMappersOwnServerIsNoHolder) {
  record_.device = {"/dev/nbd0", 43, 0, {"rbd", "img"}};
  FakeProcFs::Process& daemon = fake_.Add(765, kHostNs);
  daemon.comm = "rbd-nbd";
  daemon.files.push_back({FdOn(7, {0, 5}, {43, 0}, /*block=*/true), "/dev/nbd0"});
  fake_.Add(4242, kPodNs).comm = "sleep";
  fake_.mountinfo[kPodNs] = absl::StrCat("900 800 0:55 / / rw - overlay overlay rw\n",
                                         "901 900 43:0 / ", kStaging, " rw - ext4 /dev/nbd0 rw\n");
  env_.AddFile(kStaging, FileInfo{FileType::kDirectory, 0, {}});

  HolderBusyHandler unaware = Handler(std::chrono::seconds(30));
  absl::Status st = OnBusy(unaware);
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("pid 765 (rbd-nbd")));
  EXPECT_TRUE(env_.removed().empty());

  HolderBusyConfig config{std::chrono::seconds(30), {}, true, nullptr};
  config.device_servers = [](const VolumeRecord& record) {
    return record.device.path == "/dev/nbd0" ? std::vector<pid_t>{765} : std::vector<pid_t>{};
  };
  HolderBusyHandler aware(config, &scanner_, &unmounter_, &env_, NullMetrics(),
                          watchers_.Factory());
  EXPECT_THAT(OnBusy(aware), IsOk());
  EXPECT_EQ(env_.removed(), std::vector<std::string>{kStaging});
}

}  // namespace
}  // namespace rbdcsi
