// The fixture of rbd_privileged_test: real loop devices (root, /dev/loop-control), each detached
// at the end by its backing file, and holder processes that keep a device open.
#ifndef RBDCSI_TESTS_RBD_LOOP_PRIVILEGED_FIXTURE_H_
#define RBDCSI_TESTS_RBD_LOOP_PRIVILEGED_FIXTURE_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/file_util.h"
#include "gtest/gtest.h"
#include "rbd/loop_device.h"
#include "tests/support/test_support.h"

namespace rbdcsi {

// A child process that keeps `dev` open (exclusively, as a mount does, or not) until released.
class Holder {
 public:
  Holder(const std::string& dev, bool exclusive) {
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(dev.c_str(), O_RDONLY | (exclusive ? O_EXCL : 0));
      const char c = fd >= 0 ? 'y' : 'n';
      (void)!write(ready[1], &c, 1);
      for (;;) pause();
    }
    close(ready[1]);
    char c = 'n';
    holding_ = pid_ > 0 && read(ready[0], &c, 1) == 1 && c == 'y';
    close(ready[0]);
  }
  ~Holder() { Release(); }
  Holder(const Holder&) = delete;
  Holder& operator=(const Holder&) = delete;

  bool holding() const { return holding_; }
  void Release() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
  bool holding_ = false;
};

inline void MakeSparseFile(const std::string& path, off_t size) {
  ASSERT_THAT(MakeDirs(Dirname(path), 0755), IsOk());
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(ftruncate(fd, size), 0);
  close(fd);
}

inline std::string SysfsAttr(const std::string& dev, const std::string& attr) {
  const std::string name = dev.substr(dev.rfind('/') + 1);
  std::string text = ReadFileOrEmpty("/sys/block/" + name + "/" + attr);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

class LoopPrivilegedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A privileged test that cannot run fails rather than passing silently; run the unit
    // suite alone with `ctest -LE privileged`.
    ASSERT_TRUE(geteuid() == 0 && access("/dev/loop-control", F_OK) == 0)
        << "privileged test: needs root and /dev/loop-control";
  }

  void TearDown() override {
    holders_.clear();
    for (const auto& [dev, backing] : attached_) {
      EXPECT_THAT(loops_->Detach(dev, backing), IsOk()) << "cleaning up " << dev;
    }
  }

  // Attaches and remembers the device for clean-up.
  std::string Attach(const std::string& backing, bool read_only = false) {
    absl::StatusOr<std::string> dev = loops_->Attach(backing, read_only);
    EXPECT_THAT(dev, IsOk());
    if (!dev.ok()) return "";
    attached_.emplace_back(*dev, backing);
    return *dev;
  }

  Holder& Hold(const std::string& dev, bool exclusive) {
    holders_.push_back(std::make_unique<Holder>(dev, exclusive));
    EXPECT_TRUE(holders_.back()->holding()) << dev;
    return *holders_.back();
  }

  std::optional<LoopInfo> Find(const std::string& dev) {
    absl::StatusOr<std::vector<LoopInfo>> list = loops_->List();
    EXPECT_THAT(list, IsOk());
    if (!list.ok()) return std::nullopt;
    for (const LoopInfo& info : *list) {
      if (info.device == dev) return info;
    }
    return std::nullopt;
  }

  TempDir dir_{"rbd-privileged"};
  std::unique_ptr<LoopDevices> loops_ = NewRealLoopDevices();
  std::vector<std::pair<std::string, std::string>> attached_;  // device, backing file
  std::vector<std::unique_ptr<Holder>> holders_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_RBD_LOOP_PRIVILEGED_FIXTURE_H_
