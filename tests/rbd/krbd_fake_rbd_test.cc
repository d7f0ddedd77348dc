// The krbd mapper on real loop devices, through the fake rbd CLI (tests/rbd/fake_rbd.cc) that
// emulates krbd's map, list and unmap with them (root, /dev/loop-control).
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
#include "tests/rbd/loop_privileged_fixture.h"
#include "tests/rbd/printers.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kKey[] = "AQBVdW9mAAAAABAAcHJpdmlsZWdlZHRlc3RrZXk9PQ==";

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
