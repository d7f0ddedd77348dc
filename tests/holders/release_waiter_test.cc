// ReleaseWaiter with real processes (no privileges needed): pidfd events, timeouts, and the
// descriptors it closes.
#include "holders/release_waiter.h"

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

uint64_t NamespaceOf(pid_t pid) {
  struct stat st;
  if (::stat(("/proc/" + std::to_string(pid) + "/ns/mnt").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

HolderReport MountHeldBy(pid_t pid) {
  Holder h;
  h.kind = HolderKind::kMount;
  h.pid = pid;
  h.mount_namespace = NamespaceOf(pid);
  h.propagation = PropagationClass::kPending;
  HolderReport report;
  report.holders.push_back(h);
  return report;
}

class ReleaseWaiterTest : public ::testing::Test {
 protected:
  TempDir dir_{"waiter"};
};

TEST_F(ReleaseWaiterTest, HolderExitWakesTheWaitAndClosesItsDescriptors) {
  ChildProcess holder({"sleep", "1000"}, dir_.path());
  ASSERT_GT(holder.pid(), 0);
  ReleaseWaiter waiter;
  ASSERT_THAT(waiter.Watch(MountHeldBy(holder.pid())), IsOk());
  EXPECT_EQ(waiter.watched_processes(), 1);
  EXPECT_EQ(waiter.watched_namespaces(), 1);

  const auto start = steady_clock::now();
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(300));
    holder.Signal(SIGKILL);
  });
  // The holder shares this host's mount namespace, so a mount made by anything else on the
  // machine is a legitimate event too: wait again after such events, until the exit's.
  const std::string exited = "pid " + std::to_string(holder.pid()) + " exited";
  absl::StatusOr<bool> changed;
  do {
    changed = waiter.WaitForChange(milliseconds(10000));
  } while (changed.ok() && *changed && waiter.last_event() != exited &&
           absl::StartsWith(waiter.last_event(), "the mount table of mount namespace") &&
           steady_clock::now() - start < milliseconds(10000));
  const auto waited = steady_clock::now() - start;
  killer.join();
  ASSERT_THAT(changed, IsOk());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(waiter.last_event(), exited);
  EXPECT_GE(waited, milliseconds(250));
  EXPECT_LT(waited, milliseconds(5000));  // Woken by the event, long before the budget.
  EXPECT_EQ(waiter.watched_processes(), 0);
  EXPECT_EQ(waiter.watched_namespaces(), 0);
}

TEST_F(ReleaseWaiterTest, TimesOutWhenNothingHappens) {
  ChildProcess holder({"sleep", "1000"}, dir_.path());
  ReleaseWaiter waiter;
  ASSERT_THAT(waiter.Watch(MountHeldBy(holder.pid())), IsOk());
  const auto start = steady_clock::now();
  absl::StatusOr<bool> changed = waiter.WaitForChange(milliseconds(100));
  ASSERT_THAT(changed, IsOk());
  EXPECT_FALSE(*changed);
  EXPECT_GE(steady_clock::now() - start, milliseconds(100));
}

TEST_F(ReleaseWaiterTest, AlreadyGoneProcessIsAnImmediateEvent) {
  ChildProcess holder({"true"}, dir_.path());
  ASSERT_TRUE(holder.Wait(milliseconds(5000)).has_value());  // Reaped: the pid no longer exists.
  ReleaseWaiter waiter;
  ASSERT_THAT(waiter.Watch(MountHeldBy(holder.pid())), IsOk());
  const auto start = steady_clock::now();
  absl::StatusOr<bool> changed = waiter.WaitForChange(milliseconds(10000));
  ASSERT_THAT(changed, IsOk());
  EXPECT_TRUE(*changed);
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
}

TEST_F(ReleaseWaiterTest, NothingToWatchReturnsAtOnce) {
  HolderReport report;
  Holder swap;
  swap.kind = HolderKind::kSwap;
  report.holders.push_back(swap);
  ReleaseWaiter waiter;
  ASSERT_THAT(waiter.Watch(report), IsOk());
  absl::StatusOr<bool> changed = waiter.WaitForChange(milliseconds(10000));
  ASSERT_THAT(changed, IsOk());
  EXPECT_FALSE(*changed);
}

TEST_F(ReleaseWaiterTest, OneDescriptorPerProcessAndNamespace) {
  ChildProcess a({"sleep", "1000"}, dir_.path());
  HolderReport report = MountHeldBy(a.pid());
  report.holders.push_back(report.holders[0]);
  Holder fd = report.holders[0];
  fd.kind = HolderKind::kOpenDevice;
  report.holders.push_back(fd);
  ReleaseWaiter waiter;
  ASSERT_THAT(waiter.Watch(report), IsOk());
  EXPECT_EQ(waiter.watched_processes(), 1);
  EXPECT_EQ(waiter.watched_namespaces(), 1);
  waiter.Reset();
  EXPECT_EQ(waiter.watched_processes(), 0);
}

}  // namespace
}  // namespace rbdcsi
