// A fixture for privileged holder tests: an ext4 filesystem on a loop device of our own (a sparse
// file in a temp dir), a kubelet-like shared directory to stage it in, and holder processes.
//
// Safety: the test binary moves itself into a private mount namespace before main(), so its
// mounts never reach the host even if it crashes; TearDown still kills every child, unmounts
// what the test mounted and detaches the loop device it attached (and only that one). Children
// run under `setpriv --pdeathsig KILL` so they die with the test.
#ifndef RBDCSI_TESTS_MOUNTER_LOOP_FIXTURE_H_
#define RBDCSI_TESTS_MOUNTER_LOOP_FIXTURE_H_

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/command.h"
#include "base/fd.h"
#include "gtest/gtest.h"
#include "mounter/holders.h"
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
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
      // Busy only while a killed holder's namespace is still being torn down.
      WaitFor([&] { return ::umount2(it->c_str(), 0) == 0 || errno == EINVAL || errno == ENOENT; },
              std::chrono::seconds(5));
      ::umount2(it->c_str(), MNT_DETACH);  // Last resort for cleanup only; EINVAL if gone.
    }
    if (!device_.empty()) {
      EXPECT_TRUE(WaitFor(
          [&] {
            return Run({"losetup", "-d", device_}).exit_code == 0;
          },
          std::chrono::seconds(10)))
          << "could not detach " << device_;
    }
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

  // Starts a holder that dies with the test.
  ChildProcess& Start(const std::vector<std::string>& argv) {
    std::vector<std::string> full = {"setpriv", "--pdeathsig", "KILL", "--"};
    full.insert(full.end(), argv.begin(), argv.end());
    children_.push_back(std::make_unique<ChildProcess>(full, dir_.path()));
    return *children_.back();
  }

  // Waits until `pid` has left this process's mount namespace (unshare has run).
  bool InOwnNamespace(pid_t pid) {
    const uint64_t self = MountNamespaceInode(::getpid());
    return WaitFor(
        [&] {
          const uint64_t ns = MountNamespaceInode(pid);
          return ns != 0 && ns != self;
        },
        std::chrono::seconds(5));
  }

  // The kernel's answer: nobody holds the device exclusively (mounts, stacked devices, swap).
  bool DeviceFree() {
    UniqueFd fd(::open(device_.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
    return fd.valid();
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

#endif  // RBDCSI_TESTS_MOUNTER_LOOP_FIXTURE_H_
