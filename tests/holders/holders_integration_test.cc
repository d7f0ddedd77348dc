// Holder scan and release waiter against the real kernel: loop devices, mount namespaces,
// propagation, lazy unmounts, pinned namespaces. Privileged (ctest label "privileged").
#include <signal.h>
#include <sys/mount.h>

#include <chrono>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "driver/holders_message.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "holders/holders.h"
#include "holders/procfs.h"
#include "holders/release_waiter.h"
#include "tests/holders/loop_fixture.h"

namespace rbdcsi {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

class HoldersIntegrationTest : public LoopDeviceTest {
 protected:
  // A holder in a private mount namespace (made after the staging mount, so it has a copy),
  // whose namespace file is bind-mounted at `pin`; null (and a failure) when none could be. The
  // kernel refuses (EINVAL) to bind a mount namespace file whose sequence number is not above
  // the caller's; on this kernel that sometimes holds for a fresh namespace, so a few fresh
  // holders are tried.
  ChildProcess* StartPinnedHolder(const std::string& pin) {
    { UniqueFd f(::open(pin.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)); }
    for (int attempt = 0; attempt < 10; ++attempt) {
      ChildProcess& candidate =
          Start({"unshare", "--mount", "--propagation", "private", "sleep", "1000"});
      EXPECT_TRUE(InOwnNamespace(candidate.pid()));
      if (Mount({"mount", "--bind", absl::StrCat("/proc/", candidate.pid(), "/ns/mnt"), pin},
                pin) == 0) {
        return &candidate;
      }
      candidate.Signal(SIGKILL);
      candidate.Wait(milliseconds(5000));
    }
    ADD_FAILURE() << "could not bind-mount a mount namespace file";
    return nullptr;
  }
};

TEST_F(HoldersIntegrationTest, FreeDeviceAfterUnmount) {
  MountStaging();
  EXPECT_TRUE(Scan().held());  // Our own mount.
  ASSERT_EQ(::umount2(staging_.c_str(), 0), 0);
  EXPECT_FALSE(Scan().held());
  EXPECT_TRUE(DeviceFree());
}

TEST_F(HoldersIntegrationTest, PrivateNamespaceHolderIsNamedAndPrivate) {
  const int group = MountStaging();
  ASSERT_GT(group, 0);
  ChildProcess& holder = Start({"unshare", "--mount", "--propagation", "private", "sleep", "1000"});
  ASSERT_TRUE(InOwnNamespace(holder.pid()));
  ASSERT_EQ(::umount2(staging_.c_str(), 0), 0);  // Private copies do not make it busy.
  EXPECT_FALSE(DeviceFree());

  ScanOptions options;
  options.host_peer_group = group;
  const HolderReport report = Scan(options);
  EXPECT_EQ(report.method, NamespaceMethod::kKernel) << report.method_note;
  ASSERT_THAT(report.holders, SizeIs(1));
  const Holder& h = report.holders[0];
  EXPECT_EQ(h.kind, HolderKind::kMount);
  EXPECT_EQ(h.pid, holder.pid());
  EXPECT_EQ(h.comm, "sleep");
  EXPECT_EQ(h.cmdline, "sleep 1000");
  EXPECT_EQ(h.mount_namespace, MountNamespaceInode(holder.pid()));
  EXPECT_EQ(h.mount_point, staging_);
  EXPECT_EQ(h.propagation, PropagationClass::kPrivate);
  EXPECT_FALSE(report.OnlySelfReleasing());
  const std::string message = DescribeHolders("pvc-1", device_, major_, minor_, report);
  EXPECT_THAT(message, AllOf(HasSubstr(absl::StrCat("of pid ", holder.pid(), " (sleep)")),
                             HasSubstr("propagation private"), Not(HasSubstr("errno"))));

  holder.Signal(SIGKILL);
  ASSERT_TRUE(holder.Wait(milliseconds(5000)).has_value());
  EXPECT_TRUE(WaitFor([&] { return DeviceFree(); }, milliseconds(5000)));
  EXPECT_FALSE(Scan().held());
}

TEST_F(HoldersIntegrationTest, SlaveNamespaceCopyIsPendingAndGoesWithTheHostUnmount) {
  const int group = MountStaging();
  ChildProcess& holder = Start({"unshare", "--mount", "--propagation", "slave", "sleep", "1000"});
  ASSERT_TRUE(InOwnNamespace(holder.pid()));
  ScanOptions options;
  options.host_peer_group = group;
  const HolderReport before = Scan(options);
  ASSERT_THAT(before.holders, SizeIs(2));  // Our mount and the slave copy.
  EXPECT_TRUE(before.OnlySelfReleasing());
  const std::vector<Holder> copies = HoldersOf(before, HolderKind::kMount);
  ASSERT_THAT(copies, SizeIs(1));
  EXPECT_EQ(copies[0].pid, holder.pid());
  EXPECT_EQ(copies[0].propagation, PropagationClass::kPending);
  EXPECT_THAT(copies[0].propagation_tags, testing::Contains(absl::StrCat("master:", group)));

  // The waiter sees the propagated unmount as a change of the copy's mount table.
  HolderReport copy_only;
  copy_only.holders = copies;
  ReleaseWaiter waiter;
  ASSERT_THAT(waiter.Watch(copy_only), IsOk());
  ASSERT_EQ(::umount2(staging_.c_str(), 0), 0);
  const auto start = steady_clock::now();
  absl::StatusOr<bool> changed = waiter.WaitForChange(milliseconds(10000));
  ASSERT_THAT(changed, IsOk());
  EXPECT_TRUE(*changed);
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
  EXPECT_EQ(waiter.last_event(), absl::StrCat("the mount table of mount namespace ",
                                              copies[0].mount_namespace, " changed"));
  EXPECT_TRUE(DeviceFree());
  EXPECT_FALSE(Scan(options).held());
}

TEST_F(HoldersIntegrationTest, BusySlaveCopyFailsTheHostUnmountAndNamesTheProcess) {
  const int group = MountStaging();
  ChildProcess& holder = Start({"unshare", "--mount", "--propagation", "slave", "sh", "-c",
                                absl::StrCat("cd ", staging_, " && exec sleep 1000")});
  ASSERT_TRUE(InOwnNamespace(holder.pid()));
  // Until the shell has changed directory the copy is not busy and the host unmount succeeds.
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFileOrEmpty(absl::StrCat("/proc/", holder.pid(), "/comm")) == "sleep\n"; },
      milliseconds(5000)));
  ASSERT_TRUE(WaitFor([&] { return ::umount2(staging_.c_str(), 0) != 0 && errno == EBUSY; },
                      milliseconds(5000)))
      << "the kernel refuses the host unmount while a propagated copy is in use";

  ScanOptions options;
  options.host_peer_group = group;
  const HolderReport report = Scan(options);
  const std::vector<Holder> cwd = HoldersOf(report, HolderKind::kFileOnFilesystem);
  ASSERT_THAT(cwd, SizeIs(1));
  EXPECT_EQ(cwd[0].pid, holder.pid());
  EXPECT_EQ(cwd[0].file, "cwd");
  EXPECT_FALSE(report.OnlySelfReleasing());
  EXPECT_THAT(DescribeHolders("pvc-1", device_, major_, minor_, report),
              HasSubstr(absl::StrCat("pid ", holder.pid(), " (sleep) has its current directory")));

  ReleaseWaiter waiter;
  ASSERT_THAT(waiter.Watch(report), IsOk());
  holder.Signal(SIGKILL);
  absl::StatusOr<bool> changed = waiter.WaitForChange(milliseconds(10000));
  ASSERT_THAT(changed, IsOk());
  EXPECT_TRUE(*changed);
  waiter.Reset();
  EXPECT_TRUE(WaitFor([&] { return ::umount2(staging_.c_str(), 0) == 0; }, milliseconds(5000)));
  EXPECT_TRUE(DeviceFree());
}

TEST_F(HoldersIntegrationTest, OpenDescriptorOnTheDeviceNode) {
  ChildProcess& holder =
      Start({"sh", "-c", absl::StrCat("exec 7<", device_, " && exec sleep 1000")});
  // Running sleep means the shell has opened fd 7 and exec'd.
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFileOrEmpty(absl::StrCat("/proc/", holder.pid(), "/comm")) == "sleep\n"; },
      milliseconds(5000)));
  EXPECT_TRUE(DeviceFree()) << "an O_EXCL probe does not see a plain open()";
  const HolderReport report = Scan();
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_EQ(report.holders[0].kind, HolderKind::kOpenDevice);
  EXPECT_EQ(report.holders[0].pid, holder.pid());
  EXPECT_EQ(report.holders[0].file, "fd 7");
  EXPECT_EQ(report.holders[0].path, device_);
}

TEST_F(HoldersIntegrationTest, ScannerDoesNotReportItsOwnDescriptors) {
  UniqueFd mine(::open(device_.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(mine.valid());
  ScanOptions options;
  options.exclude_pids = {::getpid()};
  EXPECT_FALSE(Scan(options).held());
  const HolderReport report = Scan();  // Without the exclusion our fd is a holder, rightly.
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_EQ(report.holders[0].pid, ::getpid());
  EXPECT_EQ(report.holders[0].file, absl::StrCat("fd ", mine.get()));
}

TEST_F(HoldersIntegrationTest, LazyUnmountLeavesACwdHolder) {
  MountStaging();
  ChildProcess& holder = Start({"sh", "-c", absl::StrCat("cd ", staging_, " && exec sleep 1000")});
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFileOrEmpty(absl::StrCat("/proc/", holder.pid(), "/comm")) == "sleep\n"; },
      milliseconds(5000)));
  ASSERT_EQ(::umount2(staging_.c_str(), MNT_DETACH), 0);
  EXPECT_FALSE(DeviceFree());
  const HolderReport report = Scan();
  ASSERT_THAT(report.holders, SizeIs(1)) << "the detached mount is in no mount table";
  EXPECT_EQ(report.holders[0].kind, HolderKind::kFileOnFilesystem);
  EXPECT_EQ(report.holders[0].pid, holder.pid());
  EXPECT_EQ(report.holders[0].file, "cwd");
}

TEST_F(HoldersIntegrationTest, ThreadWithItsOwnMountNamespace) {
  const int group = MountStaging();
  ChildProcess& helper = Start({RBDCSI_NS_THREAD_HELPER});
  ASSERT_TRUE(
      WaitFor([&] { return helper.Stdout().find('\n') != std::string::npos; }, milliseconds(5000)))
      << helper.Stderr();
  int tid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(helper.Stdout().substr(6)), &tid));
  ASSERT_EQ(::umount2(staging_.c_str(), 0), 0);
  EXPECT_FALSE(DeviceFree());
  ScanOptions options;
  options.host_peer_group = group;
  const HolderReport report = Scan(options);
  ASSERT_THAT(report.holders, SizeIs(1));
  const Holder& h = report.holders[0];
  EXPECT_EQ(h.pid, helper.pid());
  EXPECT_EQ(h.tid, tid);
  EXPECT_EQ(h.mount_namespace, MountNamespaceInode(helper.pid(), tid));
  EXPECT_NE(h.mount_namespace, MountNamespaceInode(helper.pid()));
  EXPECT_EQ(h.propagation, PropagationClass::kPrivate);
  EXPECT_THAT(DescribeHolder(h), HasSubstr(absl::StrCat("thread ", tid, " of pid ", helper.pid())));
}

TEST_F(HoldersIntegrationTest, NamespaceWithoutProcessPinnedByABindMount) {
  MountStaging();
  const std::string pin = dir_ / "pin";
  ChildProcess* pinned = nullptr;
  pinned = StartPinnedHolder(pin);
  ASSERT_NE(pinned, nullptr);
  ChildProcess& holder = *pinned;
  const uint64_t ns = MountNamespaceInode(holder.pid());
  holder.Signal(SIGKILL);
  ASSERT_TRUE(holder.Wait(milliseconds(5000)).has_value());
  ASSERT_EQ(::umount2(staging_.c_str(), 0), 0);
  EXPECT_FALSE(DeviceFree());

  const HolderReport report = Scan();
  EXPECT_EQ(report.method, NamespaceMethod::kKernel) << report.method_note;
  ASSERT_THAT(report.holders, SizeIs(1));
  const Holder& h = report.holders[0];
  EXPECT_EQ(h.pid, 0);
  EXPECT_EQ(h.mount_namespace, ns);
  EXPECT_EQ(h.mount_point, staging_);
  EXPECT_EQ(h.namespace_pinned_at, pin);
  EXPECT_EQ(h.namespace_pinned_in, MountNamespaceInode(::getpid()));
  EXPECT_THAT(DescribeHolder(h), HasSubstr(absl::StrCat("umount ", pin)));

  ASSERT_EQ(::umount2(pin.c_str(), 0), 0);
  EXPECT_TRUE(WaitFor([&] { return DeviceFree(); }, milliseconds(5000)));
}

// The fallback for kernels without listmount: a forked child joins the pinned namespace and
// copies its mount table out (bounded; holders/procfs.h).
TEST_F(HoldersIntegrationTest, TheMountTableOfAPinnedNamespaceIsReadThroughAChild) {
  MountStaging();
  const std::string pin = dir_ / "pin";
  ChildProcess* holder = StartPinnedHolder(pin);
  ASSERT_NE(holder, nullptr);
  std::string text;
  ASSERT_THAT(NewRealProcFs()->ReadMountInfoOfNamespaceFile(pin, &text), IsOk());
  EXPECT_THAT(text, HasSubstr(absl::StrCat(" ", staging_, " ")));  // its copy of the mount
  ASSERT_EQ(::umount2(pin.c_str(), 0), 0);
  holder->Signal(SIGKILL);
  EXPECT_TRUE(holder->Wait(milliseconds(5000)).has_value());
}

TEST_F(HoldersIntegrationTest, WaiterWakesWhenAPrivateHolderIsKilledAndReleasesItsPin) {
  const int group = MountStaging();
  ChildProcess& holder = Start({"unshare", "--mount", "--propagation", "private", "sleep", "1000"});
  ASSERT_TRUE(InOwnNamespace(holder.pid()));
  ASSERT_EQ(::umount2(staging_.c_str(), 0), 0);
  ScanOptions options;
  options.host_peer_group = group;
  const HolderReport report = Scan(options);
  ASSERT_THAT(report.holders, SizeIs(1));

  ReleaseWaiter waiter;
  ASSERT_THAT(waiter.Watch(report), IsOk());
  ASSERT_EQ(waiter.watched_namespaces(), 1);  // Its mountinfo: pins the namespace until closed.
  const auto start = steady_clock::now();
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(300));
    holder.Signal(SIGKILL);
  });
  absl::StatusOr<bool> changed = waiter.WaitForChange(milliseconds(20000));
  const auto woke = steady_clock::now();
  killer.join();
  ASSERT_THAT(changed, IsOk());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(waiter.last_event(), absl::StrCat("pid ", holder.pid(), " exited"));
  EXPECT_GE(woke - start, milliseconds(250));
  EXPECT_LT(woke - start, milliseconds(5000)) << "woken by the event, not the budget";
  EXPECT_EQ(waiter.watched_namespaces(), 0);
  EXPECT_TRUE(DeviceFree()) << "the waiter must not keep the dead holder's namespace alive";
}

}  // namespace
}  // namespace rbdcsi
