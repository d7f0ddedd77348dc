// Integration tests on real loop devices (root, /dev/loop-control). Each test detaches only the
// devices it attached, always naming the backing file, so a device number re-used by another
// process on the machine is never touched.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/command.h"
#include "base/file_util.h"
#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rbd/krbd_mapper.h"
#include "rbd/loop_device.h"
#include "rbd/loop_mapper.h"
#include "tests/rbd/printers.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kKey[] = "AQBVdW9mAAAAABAAcHJpdmlsZWdlZHRlc3RrZXk9PQ==";

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

void MakeSparseFile(const std::string& path, off_t size) {
  ASSERT_THAT(MakeDirs(Dirname(path), 0755), IsOk());
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(ftruncate(fd, size), 0);
  close(fd);
}

std::string SysfsAttr(const std::string& dev, const std::string& attr) {
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

TEST_F(LoopPrivilegedTest, AttachListDetach) {
  const std::string file = dir_ / "a.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_THAT(dev, StartsWith("/dev/loop"));

  std::optional<LoopInfo> info = Find(dev);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->backing_file, CanonicalPath(file));
  EXPECT_EQ(info->major, 7u);
  EXPECT_FALSE(info->read_only);
  EXPECT_FALSE(info->autoclear);
  EXPECT_EQ(SysfsAttr(dev, "size"), "2048");
  EXPECT_THAT(loops_->IsFree(dev), IsOk());
  EXPECT_TRUE(*loops_->IsFree(dev));
  absl::StatusOr<LoopInfo> one = loops_->Get(dev);  // the same facts for one device
  ASSERT_THAT(one, IsOk());
  EXPECT_EQ(one->backing_file, info->backing_file);
  EXPECT_EQ(std::make_pair(one->major, one->minor), std::make_pair(info->major, info->minor));

  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
  EXPECT_FALSE(Find(dev).has_value());
  EXPECT_THAT(loops_->Get(dev), StatusIs(absl::StatusCode::kNotFound, HasSubstr("loop")));
  EXPECT_THAT(loops_->Get("/dev/sda"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not a loop")));
  // Again: OK, and (naming the file) harmless even if someone re-used the number meanwhile.
  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
}

TEST_F(LoopPrivilegedTest, ReadOnlyAttach) {
  const std::string file = dir_ / "ro.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file, /*read_only=*/true);
  ASSERT_FALSE(dev.empty());
  std::optional<LoopInfo> info = Find(dev);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->read_only);
  EXPECT_EQ(SysfsAttr(dev, "ro"), "1");
  const int fd = open(dev.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {  // recent kernels allow the open and refuse the write
    const char block[512] = {};
    EXPECT_LT(write(fd, block, sizeof(block)), 0);
    close(fd);
  }
}

TEST_F(LoopPrivilegedTest, AttachOfMissingFileIsNotFound) {
  EXPECT_THAT(loops_->Attach(dir_ / "missing.img", false),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.img")));
}

TEST_F(LoopPrivilegedTest, DetachWhileOpenElsewhereIsBusyAndNotLazy) {
  const std::string file = dir_ / "held.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  Holder& holder = Hold(dev, /*exclusive=*/false);

  absl::Status status = loops_->Detach(dev, file);
  EXPECT_TRUE(IsBusy(status)) << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition,
                               AllOf(HasSubstr(dev), HasSubstr("another process has it open"))));
  std::optional<LoopInfo> info = Find(dev);
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->autoclear) << "the kernel's deferred detach was not cancelled";

  // Had the detach been left pending, this release would detach the device.
  holder.Release();
  ASSERT_TRUE(Find(dev).has_value());
  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
  EXPECT_FALSE(Find(dev).has_value());
}

TEST_F(LoopPrivilegedTest, DetachWhileHeldExclusivelyIsBusy) {
  const std::string file = dir_ / "mounted.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  Holder& holder = Hold(dev, /*exclusive=*/true);

  EXPECT_FALSE(*loops_->IsFree(dev));
  absl::Status status = loops_->Detach(dev, file);
  EXPECT_TRUE(IsBusy(status)) << status;
  EXPECT_TRUE(Find(dev).has_value());

  holder.Release();
  EXPECT_TRUE(*loops_->IsFree(dev));
  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
  EXPECT_FALSE(Find(dev).has_value());
}

TEST_F(LoopPrivilegedTest, DetachLeavesDevicesOfOtherFilesAlone) {
  const std::string file = dir_ / "mine.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  EXPECT_THAT(loops_->Detach(dev, dir_ / "other.img"), IsOk());
  EXPECT_TRUE(Find(dev).has_value());
  EXPECT_THAT(loops_->Detach(dir_ / "no-such-device", ""), IsOk());
}

TEST_F(LoopPrivilegedTest, DetachFindsTheDeviceOfADeletedFile) {
  const std::string file = dir_ / "deleted.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  ASSERT_EQ(unlink(file.c_str()), 0);
  std::optional<LoopInfo> info = Find(dev);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->backing_deleted);
  EXPECT_EQ(info->backing_file, CanonicalPath(file));
  EXPECT_THAT(loops_->Detach(dev, file), IsOk());
  EXPECT_FALSE(Find(dev).has_value());
}

TEST_F(LoopPrivilegedTest, SetCapacityFollowsTheFile) {
  const std::string file = dir_ / "grow.img";
  MakeSparseFile(file, 1 << 20);
  const std::string dev = Attach(file);
  ASSERT_FALSE(dev.empty());
  ASSERT_EQ(truncate(file.c_str(), 4 << 20), 0);
  EXPECT_EQ(SysfsAttr(dev, "size"), "2048");
  EXPECT_THAT(loops_->SetCapacity(dev), IsOk());
  EXPECT_EQ(SysfsAttr(dev, "size"), "8192");
}

TEST_F(LoopPrivilegedTest, LoopMapperEndToEnd) {
  LoopImageStore store(dir_ / "data");
  LoopMapper mapper(store, NewRealLoopDevices());
  ASSERT_THAT(store.Create({"pool", "vol"}, 3 << 20), IsOk());
  MapOptions options;
  options.image = {"pool", "vol"};
  absl::StatusOr<MappedDevice> device = mapper.Map(options);
  ASSERT_THAT(device, IsOk());
  attached_.emplace_back(device->path, store.PathOf(options.image));
  EXPECT_EQ(device->major, 7u);
  struct stat st;
  ASSERT_EQ(stat(device->path.c_str(), &st), 0);
  EXPECT_EQ(minor(st.st_rdev), device->minor);

  // Devices of other files (here one of this test's own) are never listed.
  MakeSparseFile(dir_ / "foreign.img", 1 << 20);
  const std::string foreign = Attach(dir_ / "foreign.img");
  absl::StatusOr<std::vector<MappedDevice>> list = mapper.List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, Contains(*device));
  EXPECT_THAT(*list, Not(Contains(Field(&MappedDevice::path, foreign))));

  ASSERT_THAT(store.Resize({"pool", "vol"}, 5 << 20), IsOk());
  EXPECT_THAT(mapper.RefreshCapacity(*device), IsOk());
  EXPECT_EQ(SysfsAttr(device->path, "size"), "10240");

  {
    Holder holder(device->path, /*exclusive=*/true);
    ASSERT_TRUE(holder.holding());
    EXPECT_TRUE(IsBusy(mapper.Unmap(*device)));
  }
  EXPECT_THAT(mapper.Unmap(*device), IsOk());
  EXPECT_THAT(mapper.Unmap(*device), IsOk());
  EXPECT_THAT(mapper.List(), IsOk());
  EXPECT_THAT(*mapper.List(), Not(Contains(*device)));
  options.image = {"pool", "missing"};
  EXPECT_THAT(mapper.Map(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("pool/missing")));
}

class KrbdFakeRbdPrivilegedTest : public LoopPrivilegedTest {
 protected:
  void SetUp() override {
    LoopPrivilegedTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_EQ(setenv("RBDCSI_FAKE_RBD_DIR", rbd_dir_.path().c_str(), 1), 0);
    unsetenv("RBDCSI_FAKE_RBD_MAP_ERRNO");
    KrbdMapperOptions options;
    options.rbd_program = RBDCSI_FAKE_RBD_PATH;
    options.key_dir = dir_ / "keys";
    mapper_ = std::make_unique<KrbdMapper>(runner_.get(), options);
  }
  void TearDown() override {
    unsetenv("RBDCSI_FAKE_RBD_MAP_ERRNO");
    LoopPrivilegedTest::TearDown();
  }

  MapOptions Options(const std::string& image) {
    MapOptions options;
    options.image = {"pool", image};
    options.monitors = "192.0.2.1:6789";
    options.user = "admin";
    options.key = kKey;
    return options;
  }

  absl::StatusOr<MappedDevice> Map(const std::string& image) {
    absl::StatusOr<MappedDevice> device = mapper_->Map(Options(image));
    if (device.ok()) attached_.emplace_back(device->path, rbd_dir_ / ("pool/" + image));
    return device;
  }

  std::vector<nlohmann::json> Calls() {
    std::vector<nlohmann::json> calls;
    std::istringstream lines(ReadFileOrEmpty(rbd_dir_ / "calls.log"));
    for (std::string line; std::getline(lines, line);) calls.push_back(nlohmann::json::parse(line));
    return calls;
  }

  TempDir rbd_dir_{"fake-rbd"};
  std::unique_ptr<CommandRunner> runner_ = NewRealCommandRunner();
  std::unique_ptr<KrbdMapper> mapper_;
};

TEST_F(KrbdFakeRbdPrivilegedTest, MapListUnmapWithBusyInBetween) {
  MakeSparseFile(rbd_dir_ / "pool/vol", 1 << 20);
  absl::StatusOr<MappedDevice> device = Map("vol");
  ASSERT_THAT(device, IsOk());
  EXPECT_THAT(device->path, StartsWith("/dev/loop"));
  EXPECT_EQ(device->major, 7u);
  EXPECT_EQ(device->image, (ImageSpec{"pool", "vol"}));

  absl::StatusOr<std::vector<MappedDevice>> list = mapper_->List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, Contains(*device));

  {
    Holder holder(device->path, /*exclusive=*/false);
    ASSERT_TRUE(holder.holding());
    absl::Status status = mapper_->Unmap(*device);
    EXPECT_TRUE(IsBusy(status)) << status;
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition,
                                 AllOf(HasSubstr("rbd: sysfs write failed"),
                                       HasSubstr("rbd: unmap failed: (16) Device or resource "
                                                 "busy"))));
    EXPECT_THAT(*mapper_->List(), Contains(*device));
  }
  EXPECT_THAT(mapper_->Unmap(*device), IsOk());
  EXPECT_THAT(*mapper_->List(), IsEmpty());
  EXPECT_THAT(mapper_->Unmap(MappedDevice{device->path, 0, 0, {}}), IsOk());

  // The key reached rbd only as a 0600 file, which is gone now.
  std::vector<nlohmann::json> calls = Calls();
  ASSERT_FALSE(calls.empty());
  int maps = 0;
  for (const nlohmann::json& call : calls) {
    EXPECT_THAT(call["cmdline"].get<std::string>(), Not(HasSubstr(kKey)));
    if (call["argv"][1] == "map") {
      ++maps;
      EXPECT_EQ(call["keyfile_valid"], true) << call.dump();
      EXPECT_THAT(call["cmdline"].get<std::string>(), HasSubstr("--keyfile " + (dir_ / "keys/")));
    }
  }
  EXPECT_EQ(maps, 1);
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "keys", ec)) << ec.message();
}

TEST_F(KrbdFakeRbdPrivilegedTest, MapErrorsKeepTheirMeaning) {
  EXPECT_THAT(Map("missing"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("rbd: map failed: (2) No such file or directory")));
  MakeSparseFile(rbd_dir_ / "pool/vol", 1 << 20);
  ASSERT_EQ(setenv("RBDCSI_FAKE_RBD_MAP_ERRNO", "110", 1), 0);
  EXPECT_THAT(Map("vol"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("(110) Connection timed out")));
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "keys", ec)) << ec.message();
}

}  // namespace
}  // namespace rbdcsi
