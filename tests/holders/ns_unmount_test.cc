// The real NamespaceUnmounter against the kernel: a holder's private copy of a loop-device mount
// is unmounted inside the holder's namespace, and only when namespace and mount id match.
// Privileged (ctest label "privileged").
#include "holders/ns_unmount.h"

#include <signal.h>
#include <sys/mount.h>

#include <chrono>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/holders/loop_fixture.h"

namespace rbdcsi {
namespace {

using std::chrono::milliseconds;
using ::testing::_;
using ::testing::HasSubstr;

class NamespaceUnmountTest : public LoopDeviceTest {
 protected:
  // The mount of our device at `path` in the mount table of /proc/<task>/mountinfo.
  std::optional<MountInfo> MountOfDevice(const std::string& task, const std::string& path) {
    absl::StatusOr<std::vector<MountInfo>> table =
        ReadMountInfo(absl::StrCat("/proc/", task, "/mountinfo"));
    if (!table.ok()) return std::nullopt;
    for (const MountInfo& m : MountsAt(*table, path)) {
      if (m.major == major_ && m.minor == minor_) return m;
    }
    return std::nullopt;
  }

  // A private-namespace holder with a copy of the staging mount; the host's own mount is gone,
  // so the copy alone keeps the device busy. Returns the copy's mount id.
  int StartPrivateHolder(const std::vector<std::string>& argv = {
                             "unshare", "--mount", "--propagation", "private", "sleep", "1000"}) {
    MountStaging();
    holder_ = &Start(argv);
    EXPECT_TRUE(InOwnNamespace(holder_->pid()));
    EXPECT_EQ(::umount2(staging_.c_str(), 0), 0);
    EXPECT_FALSE(DeviceFree());
    const std::optional<MountInfo> copy = MountOfDevice(std::to_string(holder_->pid()), staging_);
    EXPECT_TRUE(copy.has_value());
    return copy ? copy->mount_id : 0;
  }

  std::unique_ptr<NamespaceUnmounter> unmounter_ = NewRealNamespaceUnmounter();
  ChildProcess* holder_ = nullptr;
};

TEST_F(NamespaceUnmountTest, UnmountsTheCopyInsideTheHoldersNamespace) {
  const int id = StartPrivateHolder();
  ASSERT_GT(id, 0);
  const pid_t pid = holder_->pid();
  EXPECT_THAT(unmounter_->Unmount(pid, 0, MountNamespaceInode(pid), id, staging_), IsOk());
  EXPECT_FALSE(MountOfDevice(std::to_string(pid), staging_).has_value());
  EXPECT_TRUE(WaitFor([&] { return DeviceFree(); }, milliseconds(5000)));
  // The holder lives on, in its own namespace.
  EXPECT_FALSE(holder_->Wait(milliseconds(0)).has_value());
  EXPECT_NE(MountNamespaceInode(pid), MountNamespaceInode(::getpid()));
}

TEST_F(NamespaceUnmountTest, WrongNamespaceIsRefused) {
  const int id = StartPrivateHolder();
  const pid_t pid = holder_->pid();
  // As if the pid had been reused by a process in another namespace (ours).
  EXPECT_THAT(unmounter_->Unmount(pid, 0, MountNamespaceInode(::getpid()), id, staging_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is now in mount")));
  EXPECT_TRUE(MountOfDevice(std::to_string(pid), staging_).has_value());
  EXPECT_FALSE(holder_->Wait(milliseconds(0)).has_value());
}

TEST_F(NamespaceUnmountTest, WrongMountIdIsRefused) {
  const int id = StartPrivateHolder();
  const pid_t pid = holder_->pid();
  EXPECT_THAT(unmounter_->Unmount(pid, 0, MountNamespaceInode(pid), id + 100000, staging_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat("the topmost mount there is mount ", id))));
  EXPECT_TRUE(MountOfDevice(std::to_string(pid), staging_).has_value());
  EXPECT_FALSE(holder_->Wait(milliseconds(0)).has_value());
  EXPECT_FALSE(DeviceFree());
}

TEST_F(NamespaceUnmountTest, CopyInUseIsBusyAndStays) {
  const int id = StartPrivateHolder({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                                     "cd \"$0\" && exec sleep 1000", staging_});
  const pid_t pid = holder_->pid();
  ASSERT_TRUE(WaitFor(
      [&] {
        char cwd[4096];
        const std::string link = absl::StrCat("/proc/", pid, "/cwd");
        const ssize_t n = ::readlink(link.c_str(), cwd, sizeof(cwd));
        return n > 0 && std::string(cwd, static_cast<size_t>(n)) == staging_;
      },
      milliseconds(5000)));
  const absl::Status st = unmounter_->Unmount(pid, 0, MountNamespaceInode(pid), id, staging_);
  EXPECT_TRUE(IsBusy(st)) << st;
  EXPECT_TRUE(MountOfDevice(std::to_string(pid), staging_).has_value());  // never lazily
}

TEST_F(NamespaceUnmountTest, GoneProcessIsNotFound) {
  const int id = StartPrivateHolder();
  const pid_t pid = holder_->pid();
  const uint64_t ns = MountNamespaceInode(pid);
  holder_->Signal(SIGKILL);
  ASSERT_TRUE(holder_->Wait(milliseconds(5000)).has_value());
  EXPECT_THAT(unmounter_->Unmount(pid, 0, ns, id, staging_),
              StatusIs(absl::StatusCode::kNotFound, _));
}

TEST_F(NamespaceUnmountTest, RelativePathIsRefused) {
  EXPECT_THAT(unmounter_->Unmount(::getpid(), 0, MountNamespaceInode(::getpid()), 1, "mnt"),
              StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(unmounter_->Unmount(::getpid(), 0, MountNamespaceInode(::getpid()), 1, "/"),
              StatusIs(absl::StatusCode::kInvalidArgument, _));
}

// Only one thread of the helper is in the holding namespace: its copy is reached through that
// thread, and the process's own namespace is not mistaken for it.
TEST_F(NamespaceUnmountTest, ThreadHolderIsUnmountedThroughItsThread) {
  MountStaging();
  ChildProcess& helper = Start({RBDCSI_NS_THREAD_HELPER});
  ASSERT_TRUE(
      WaitFor([&] { return helper.Stdout().find('\n') != std::string::npos; }, milliseconds(5000)))
      << helper.Stderr();
  int tid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(helper.Stdout().substr(6)), &tid));
  ASSERT_EQ(::umount2(staging_.c_str(), 0), 0);
  const std::string task = absl::StrCat(helper.pid(), "/task/", tid);
  const std::optional<MountInfo> copy = MountOfDevice(task, staging_);
  ASSERT_TRUE(copy.has_value());
  const uint64_t thread_ns = MountNamespaceInode(helper.pid(), tid);
  EXPECT_THAT(unmounter_->Unmount(helper.pid(), 0, thread_ns, copy->mount_id, staging_),
              StatusIs(absl::StatusCode::kFailedPrecondition, _));
  EXPECT_THAT(unmounter_->Unmount(helper.pid(), tid, thread_ns, copy->mount_id, staging_), IsOk());
  EXPECT_FALSE(MountOfDevice(task, staging_).has_value());
  EXPECT_TRUE(WaitFor([&] { return DeviceFree(); }, milliseconds(5000)));
  EXPECT_FALSE(helper.Wait(milliseconds(0)).has_value());
}

}  // namespace
}  // namespace rbdcsi
