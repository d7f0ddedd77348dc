// DESIGN.md step 5 against a fake /proc: fail fast for private holders, wait (on a real pidfd)
// for holders that let go by themselves, reclaim only allowlisted ones.
#include "driver/holder_busy_handler.h"

#include <signal.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/mounter/fake_procfs.h"
#include "tests/support/scripted_command_runner.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kHostNs = 4026531840;
constexpr uint64_t kPodNs = 4026532871;
constexpr char kStaging[] = "/var/lib/kubelet/plugins/kubernetes.io/csi/rbd/abc/globalmount";

class HolderBusyHandlerTest : public ::testing::Test {
 protected:
  HolderBusyHandlerTest() : scanner_(fake_) {
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
    return HolderBusyHandler({budget, std::move(reclaim)}, &scanner_, &runner_);
  }

  absl::Status OnBusy(HolderBusyHandler& handler, int attempt = 0) {
    return handler.OnBusy(record_, BusyStage::kUnmap, BusyError("(16) Device or resource busy"),
                          attempt, std::chrono::steady_clock::now());
  }

  FakeProcFs fake_;
  HolderScanner scanner_;
  ScriptedCommandRunner runner_;
  VolumeRecord record_;
};

TEST_F(HolderBusyHandlerTest, PrivateHolderFailsAtOnceNamingItAndTheFix) {
  AddPodHolder(4242, "node_exporter", "");
  HolderBusyHandler handler = Handler(std::chrono::seconds(30));
  const auto start = std::chrono::steady_clock::now();
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
  // Did not spend its budget: far below 30 s.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  EXPECT_TRUE(runner_.calls().empty());  // no reclaim without an allowlist
}

// A pending holder (a slave of the staging mount's peer group) is waited for; the wait is
// woken by the holder's exit through a real pidfd, long before the budget.
TEST_F(HolderBusyHandlerTest, PendingHolderIsWaitedForAndItsExitWakesTheWait) {
  TempDir dir("busy");
  ChildProcess holder({"sleep", "1000"}, dir.path());
  AddPodHolder(holder.pid(), "sleep", "master:7");
  HolderBusyHandler handler = Handler(std::chrono::seconds(30));
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    holder.Signal(SIGKILL);
  });
  absl::Status st = OnBusy(handler);
  killer.join();
  EXPECT_THAT(st, IsOk());  // "try again now", not the timeout's FAILED_PRECONDITION
}

TEST_F(HolderBusyHandlerTest, PendingHolderThatStaysFailsAfterTheBudgetSayingItWaited) {
  TempDir dir("busy");
  ChildProcess holder({"sleep", "1000"}, dir.path());
  AddPodHolder(holder.pid(), "sleep", "master:7");
  HolderBusyHandler handler = Handler(std::chrono::milliseconds(100));
  absl::Status st = OnBusy(handler);
  EXPECT_THAT(st,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("propagation pending")));
  EXPECT_THAT(std::string(st.message()), HasSubstr("waited"));
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
  runner_.Answer(0, "", "");
  HolderBusyHandler handler = Handler(std::chrono::seconds(1), {"node_exporter"});
  EXPECT_THAT(OnBusy(handler), IsOk());
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("nsenter", "--target", "4242", "--mount", "--",
                                              "umount", std::string("/host") + kStaging));
  EXPECT_EQ(handler.reclaims(), 1);
}

TEST_F(HolderBusyHandlerTest, HolderNotOnTheAllowlistIsNotReclaimed) {
  AddPodHolder(4242, "fluentd", "");
  HolderBusyHandler handler = Handler(std::chrono::seconds(1), {"node_exporter"});
  EXPECT_THAT(OnBusy(handler),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("fluentd")));
  EXPECT_TRUE(runner_.calls().empty());
  EXPECT_EQ(handler.reclaims(), 0);
}

TEST_F(HolderBusyHandlerTest, FailedReclaimFallsBackToTheReport) {
  AddPodHolder(4242, "node_exporter", "");
  runner_.Answer(32, "", "umount: target is busy");
  HolderBusyHandler handler = Handler(std::chrono::seconds(1), {"node_exporter"});
  EXPECT_THAT(OnBusy(handler),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("node_exporter")));
}

}  // namespace
}  // namespace rbdcsi
