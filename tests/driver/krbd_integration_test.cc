// The krbd mapper end to end through the real socket, with tests/rbd/fake_rbd standing in for
// the rbd CLI (it emulates krbd on loop devices): the cephx key reaches rbd only as a keyfile,
// never in argv or logs, and a held device gives rbd's own EBUSY, turned into a named holder.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/hash.h"
#include "gtest/gtest.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kKey[] = "AQBkrbdTestKeyThatMustNeverLeak000000000==";

// What tests/rbd/fake_rbd records of the key file it read: StableHash64 of it, in hex.
std::string KeyHash() { return absl::StrCat(absl::Hex(StableHash64(kKey), absl::kZeroPad16)); }

// True while any process runs the fake rbd binary.
bool FakeRbdRunning() {
  const std::filesystem::path fake = std::filesystem::canonical(RBDCSI_FAKE_RBD_PATH);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(entry.path() / "exe", link_ec) == fake) return true;
  }
  return false;
}

class KrbdIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(setenv("RBDCSI_FAKE_RBD_DIR", rbd_dir().c_str(), 1), 0);
    std::filesystem::create_directories(rbd_dir());
    std::filesystem::create_directories(staging());
    ChildProcess create({RBDCSI_FAKE_RBD_PATH, "create", "rbd/img1", "--size", "32"}, dir_.path());
    ASSERT_EQ(create.Wait(std::chrono::seconds(30)), 0) << create.Stderr();
    plugin_ = std::make_unique<Plugin>(
        RBDCSI_BINARY, dir_.path(),
        std::vector<std::string>{"--rbd-program", RBDCSI_FAKE_RBD_PATH, "--key-dir", dir_ / "keys",
                                 "--unstage-wait", "1"});
    std::string why;
    ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
  }

  void TearDown() override {
    if (plugin_) {
      EXPECT_EQ(plugin_->Stop(), 0);
      EXPECT_THAT(plugin_->Stderr(), Not(HasSubstr(kKey)));
    }
    EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
    EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
    CleanUpUnder(dir_.path());
    unsetenv("RBDCSI_FAKE_RBD_DIR");
  }

  std::string rbd_dir() const { return dir_ / "cluster"; }
  std::string staging() const { return dir_ / "kubelet/globalmount"; }

  grpc::Status Stage() {
    csi::v1::NodeStageVolumeRequest req;
    req.set_volume_id("0001-krbd-img1");
    req.set_staging_target_path(staging());
    req.mutable_volume_capability()->mutable_mount()->set_fs_type("ext4");
    req.mutable_volume_capability()->mutable_access_mode()->set_mode(
        csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    auto& ctx = *req.mutable_volume_context();
    ctx["mapper"] = "krbd";
    ctx["pool"] = "rbd";
    ctx["image"] = "img1";
    ctx["monitors"] = "127.0.0.1:6789";
    (*req.mutable_secrets())["userID"] = "kubernetes";
    (*req.mutable_secrets())["userKey"] = kKey;
    csi::v1::NodeStageVolumeResponse resp;
    grpc::ClientContext ctx_;
    return plugin_->node().NodeStageVolume(&ctx_, req, &resp);
  }

  grpc::Status Unstage() {
    csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id("0001-krbd-img1");
    req.set_staging_target_path(staging());
    csi::v1::NodeUnstageVolumeResponse resp;
    grpc::ClientContext ctx;
    return plugin_->node().NodeUnstageVolume(&ctx, req, &resp);
  }

  TempDir dir_{"krbd"};
  std::unique_ptr<Plugin> plugin_;
};

TEST_F(KrbdIntegrationTest, StagesThroughTheRbdCliWithTheKeyOnlyInAKeyfile) {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(LoopDevicesBackedUnder(dir_.path()).size(), 1u);
  EXPECT_THAT(MountsUnder(dir_.path()), ::testing::ElementsAre(staging()));
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();

  const std::string calls = ReadFileOrEmpty(rbd_dir() + "/calls.log");
  EXPECT_THAT(calls, HasSubstr("device map rbd/img1"));
  EXPECT_THAT(calls, HasSubstr("device unmap"));
  EXPECT_THAT(calls, Not(HasSubstr(kKey)));  // every logged argv
  // rbd read exactly the key, from a 0600 file in a fresh directory under --key-dir.
  int maps = 0;
  for (absl::string_view line : absl::StrSplit(calls, '\n', absl::SkipEmpty())) {
    const nlohmann::json call = nlohmann::json::parse(line.begin(), line.end());
    if (call["argv"].size() < 2 || call["argv"][1] != "map") continue;
    ++maps;
    EXPECT_EQ(call["keyfile_valid"], true) << call.dump();
    EXPECT_EQ(call["keyfile_hash"], KeyHash()) << call.dump();
    EXPECT_THAT(call["keyfile"].get<std::string>(),
                ::testing::StartsWith(dir_ / "keys/rbdcsi-key-"));
  }
  EXPECT_EQ(maps, 1);
  // The per-call key directories are gone.
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "keys"));
  EXPECT_THAT(ReadFileOrEmpty(plugin_->state_dir() + "/volumes/0001-krbd-img1.json"), IsEmpty());
}

TEST_F(KrbdIntegrationTest, RbdsOwnBusyAnswerBecomesANamedHolderAndTheRetryUnmaps) {
  ASSERT_TRUE(Stage().ok());
  std::vector<std::string> devices = LoopDevicesBackedUnder(dir_.path());
  ASSERT_EQ(devices.size(), 1u);
  const std::string backing = LoopAttribute(devices[0], "backing_file");
  std::error_code ec;
  ASSERT_EQ(backing, std::filesystem::weakly_canonical(rbd_dir() + "/rbd/img1", ec).string());
  // A reader of the raw device: invisible to mount tables, fatal to `rbd unmap`.
  TempDir holder_dir("krbd-holder");
  ChildProcess holder({"sh", "-c", "exec 3<" + devices[0] + "; exec sleep 1000"},
                      holder_dir.path());
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadFileOrEmpty("/proc/" + std::to_string(holder.pid()) + "/comm") == "sleep\n";
      },
      std::chrono::seconds(10)));

  grpc::Status st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(devices[0]));
  EXPECT_THAT(st.error_message(), HasSubstr("pid " + std::to_string(holder.pid())));
  EXPECT_THAT(st.error_message(), HasSubstr("sleep"));
  EXPECT_THAT(ReadFileOrEmpty(rbd_dir() + "/calls.log"), HasSubstr("\"exit_code\":16"));
  // Not detached lazily: with autoclear set the device would stay listed exactly as long as the
  // holder keeps it open and go when it lets go, so the retry below would pass anyway.
  EXPECT_EQ(LoopDevicesBackedUnder(dir_.path()), devices);
  EXPECT_EQ(LoopAttribute(devices[0], "autoclear"), "0");

  holder.Signal(SIGKILL);
  ASSERT_TRUE(holder.Wait(std::chrono::seconds(10)).has_value());
  std::filesystem::remove_all(staging());
  // The holder is gone, which is when a lazy detach would happen: the device must still be
  // attached to this test's image, so that it is the retry that unmaps it.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(LoopAttribute(devices[0], "backing_file"), backing) << "detached on the last close";
  EXPECT_EQ(LoopAttribute(devices[0], "autoclear"), "0");
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
}

// A map that takes 3 s (a slow cluster) keeps the first stage busy while the others arrive:
// exactly one proceeds, every other concurrent call on the volume is ABORTED.
TEST_F(KrbdIntegrationTest, ConcurrentCallsOnOneVolumeExactlyOneProceeds) {
  { std::ofstream(rbd_dir() + "/map_delay_ms") << "3000"; }
  constexpr int kCallers = 6;
  std::vector<grpc::StatusCode> codes(kCallers);
  std::vector<std::thread> threads;
  const std::string record = plugin_->state_dir() + "/volumes/0001-krbd-img1.json";
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      // The others start once the first holds the volume: its record says it is mapping.
      if (i > 0) {
        WaitFor([&] { return std::filesystem::exists(record); }, std::chrono::seconds(20));
      }
      codes[i] = i % 2 == 0 ? Stage().error_code() : Unstage().error_code();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(codes[0], grpc::StatusCode::OK);
  for (int i = 1; i < kCallers; ++i) EXPECT_EQ(codes[i], grpc::StatusCode::ABORTED) << i;
  std::filesystem::remove(rbd_dir() + "/map_delay_ms");
  ASSERT_TRUE(Stage().ok());  // the same request again: already staged
  ASSERT_EQ(LoopDevicesBackedUnder(dir_.path()).size(), 1u);
  ASSERT_TRUE(Unstage().ok());
}

// A call stuck in a child process does not keep serve alive: SIGTERM with the test plugin's
// 5 s grace period ends it seconds before the hanging rbd would have, and no key file stays.
TEST_F(KrbdIntegrationTest, ServeExitsAfterItsGracePeriodWhileRbdHangs) {
  ASSERT_EQ(plugin_->Stop(), 0);
  { std::ofstream(rbd_dir() + "/map_delay_ms") << "25000"; }
  ASSERT_EQ(setenv("RBDCSI_FAKE_RBD_MAP_ERRNO", "110", 1), 0);  // maps nothing in the end
  plugin_ = std::make_unique<Plugin>(
      RBDCSI_BINARY, dir_.path(),
      std::vector<std::string>{"--rbd-program", RBDCSI_FAKE_RBD_PATH, "--key-dir", dir_ / "keys"});
  unsetenv("RBDCSI_FAKE_RBD_MAP_ERRNO");
  std::string why;
  ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
  const std::string record = plugin_->state_dir() + "/volumes/0001-krbd-img1.json";
  std::thread stage([&] { Stage(); });
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(record); }, std::chrono::seconds(20)));

  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(plugin_->Stop(), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(17));
  stage.join();
  EXPECT_THAT(plugin_->Stderr(), HasSubstr("exiting without them"));
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "keys"));
  plugin_.reset();
  // The orphaned rbd ends with its (failing) map; wait for it so that nothing outlives the test.
  EXPECT_TRUE(WaitFor([] { return !FakeRbdRunning(); }, std::chrono::seconds(40)));
}

}  // namespace
}  // namespace rbdcsi
