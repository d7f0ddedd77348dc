// A fixture for privileged holder tests: an ext4 filesystem on a loop device of our own (a sparse
// file in a temp dir), a kubelet-like shared directory to stage it in, and holder processes.
//
// Safety: the test binary moves itself into a private mount namespace before main(), so its
// mounts never reach the host even if it crashes; TearDown kills every child, unmounts what the
// test mounted and detaches the loop device it attached (and only while that device is still
// attached to the fixture's image). Whatever it cannot release normally is a leak it reports
// (EXPECT) before its last resort (lazy unmount; a still-open device is left with autoclear).
// Children get SIGKILL as their parent-death signal (ChildProcess), so they die with the test.
#ifndef RBDCSI_TESTS_HOLDERS_LOOP_FIXTURE_H_
#define RBDCSI_TESTS_HOLDERS_LOOP_FIXTURE_H_

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/command.h"
#include "base/fd.h"
#include "driver/holders_message.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "holders/holders.h"
#include "mounter/mounter.h"
#include "mounter/mountinfo.h"
#include "tests/support/test_support.h"

namespace rbdcsi {

inline bool EnterPrivateMountNamespace() {
  if (::geteuid() != 0 || ::unshare(CLONE_NEWNS) != 0) return false;
  return ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
}

// Runs before main(), while the process has one thread.
inline const bool kInPrivateMountNamespace = EnterPrivateMountNamespace();

inline uint64_t MountNamespaceInode(pid_t pid, pid_t tid = 0) {
  const std::string path = tid == 0 ? absl::StrCat("/proc/", pid, "/ns/mnt")
                                    : absl::StrCat("/proc/", pid, "/task/", tid, "/ns/mnt");
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class LoopDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A privileged test that cannot run fails rather than passing silently.
    ASSERT_TRUE(kInPrivateMountNamespace)
        << "privileged test: needs root and a private mount namespace";
    image_ = dir_ / "image";
    {
      UniqueFd fd(::open(image_.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
      ASSERT_TRUE(fd.valid());
      ASSERT_EQ(::ftruncate(fd.get(), 64 << 20), 0);
    }
    const CommandResult attach = Run({"losetup", "--find", "--show", image_});
    ASSERT_EQ(attach.exit_code, 0) << attach.err;
    device_ = std::string(absl::StripTrailingAsciiWhitespace(attach.out));
    struct stat st;
    ASSERT_EQ(::stat(device_.c_str(), &st), 0);
    major_ = ::major(st.st_rdev);
    minor_ = ::minor(st.st_rdev);
    ASSERT_EQ(Run({"mkfs.ext4", "-q", "-F", device_}).exit_code, 0);
    // Like kubelet's directory: a shared mount, so the staging mount gets a peer group.
    base_ = dir_ / "kubelet";
    ASSERT_EQ(::mkdir(base_.c_str(), 0755), 0);
    ASSERT_EQ(Mount({"mount", "-t", "tmpfs", "rbdcsi-test", base_}, base_), 0);
    ASSERT_EQ(Run({"mount", "--make-shared", base_}).exit_code, 0);
    staging_ = base_ + "/globalmount";
    ASSERT_EQ(::mkdir(staging_.c_str(), 0755), 0);
  }

  void TearDown() override {
    children_.clear();  // SIGKILL and reap every holder first.
    // Normal unmounts: what stays busy is a leak, reported here.
    std::vector<std::string> busy;
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
      // Busy only while a killed holder's namespace is still being torn down.
      int err = 0;
      const bool unmounted = WaitFor(
          [&] {
            err = ::umount2(it->c_str(), 0) == 0 ? 0 : errno;
            return err == 0 || err == EINVAL || err == ENOENT;  // EINVAL: not mounted (any more)
          },
          std::chrono::seconds(5));
      EXPECT_TRUE(unmounted) << *it << " is still mounted: " << std::strerror(err);
      if (!unmounted) busy.push_back(*it);
    }
    EXPECT_THAT(MountsUnder(dir_.path()), ::testing::IsEmpty()) << "the test left mounts behind";
    for (const std::string& target : busy) {
      ::umount2(target.c_str(), MNT_DETACH);  // Last resort, after the leak was reported.
    }
    if (device_.empty()) return;
    // Nothing may hold the device any more, in any namespace: no mount, no open descriptor.
    std::string holders;
    EXPECT_TRUE(WaitFor(
        [&] {
          holders = DescribeAllHolders();
          return holders.empty() && DeviceFree();
        },
        std::chrono::seconds(10)))
        << device_ << " is still held: " << holders;
    // Only the fixture's own device: the number may have been detached and re-used meanwhile.
    std::error_code ec;
    EXPECT_EQ(LoopAttribute(device_, "backing_file"),
              std::filesystem::weakly_canonical(image_, ec).string())
        << device_ << " is no longer attached to the fixture's image";
    // If it is still open somewhere (reported above) the kernel only sets autoclear.
    EXPECT_TRUE(DetachLoopDeviceBackedBy(device_, image_)) << "could not detach " << device_;
  }

  CommandResult Run(const std::vector<std::string>& argv) {
    absl::StatusOr<CommandResult> r = runner_->Run(argv);
    if (!r.ok()) return {127, "", std::string(r.status().message())};
    return *r;
  }

  // Runs a mount command and remembers `target` for TearDown.
  int Mount(const std::vector<std::string>& argv, const std::string& target) {
    const int code = Run(argv).exit_code;
    if (code == 0) mounts_.push_back(target);
    return code;
  }

  // Mounts the device on the staging path; returns its peer group.
  int MountStaging() {
    EXPECT_EQ(Mount({"mount", device_, staging_}, staging_), 0);
    absl::StatusOr<std::vector<MountInfo>> table = ReadMountInfo("/proc/self/mountinfo");
    if (!table.ok()) return 0;
    std::vector<MountInfo> at = MountsAt(*table, staging_);
    if (at.empty() || !at.back().shared_peer_group()) return 0;
    return *at.back().shared_peer_group();
  }

  // Starts a holder that dies with the test (ChildProcess's parent-death signal).
  ChildProcess& Start(const std::vector<std::string>& argv) {
    children_.push_back(std::make_unique<ChildProcess>(argv, dir_.path()));
    return *children_.back();
  }

  // Waits until `pid`, started as `unshare --mount --propagation P PROGRAM...`, runs PROGRAM in a
  // mount namespace other than ours. A new namespace alone is not enough: unshare sets the
  // propagation after unshare(2), and until then its copies still receive our unmounts (a guest
  // VM's slow CPU once let the test's host unmount remove the "private" copy in that window).
  bool InOwnNamespace(pid_t pid) {
    const uint64_t self = MountNamespaceInode(::getpid());
    const std::string comm = absl::StrCat("/proc/", pid, "/comm");
    return WaitFor(
        [&] {
          const uint64_t ns = MountNamespaceInode(pid);
          const std::string name = ReadFileOrEmpty(comm);
          return ns != 0 && ns != self && !name.empty() && name != "unshare\n";
        },
        std::chrono::seconds(5));
  }

  // The kernel's answer: nobody holds the device exclusively (mounts, stacked devices, swap).
  bool DeviceFree() {
    UniqueFd fd(::open(device_.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
    return fd.valid();
  }

  // Every holder of the device a scan finds, described; "" when there is none (or the scan
  // failed, which DeviceFree() still catches for mounts).
  std::string DescribeAllHolders() {
    HolderScanner scanner(*procfs_);
    absl::StatusOr<HolderReport> report = scanner.Scan(major_, minor_, {});
    std::string out;
    if (!report.ok()) return out;
    for (const Holder& h : report->holders) absl::StrAppend(&out, DescribeHolder(h), "; ");
    return out;
  }

  HolderReport Scan(const ScanOptions& options = {}) {
    HolderScanner scanner(*procfs_);
    absl::StatusOr<HolderReport> report = scanner.Scan(major_, minor_, options);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : HolderReport{};
  }

  std::vector<Holder> HoldersOf(const HolderReport& report, HolderKind kind) {
    std::vector<Holder> out;
    for (const Holder& h : report.holders) {
      if (h.kind == kind && !h.host_namespace) out.push_back(h);
    }
    return out;
  }

  TempDir dir_{"holders"};
  std::unique_ptr<CommandRunner> runner_ = NewRealCommandRunner();
  std::unique_ptr<ProcFs> procfs_ = NewRealProcFs();
  std::string image_;
  std::string device_;
  unsigned major_ = 0;
  unsigned minor_ = 0;
  std::string base_;
  std::string staging_;
  std::vector<std::string> mounts_;
  std::vector<std::unique_ptr<ChildProcess>> children_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_HOLDERS_LOOP_FIXTURE_H_
