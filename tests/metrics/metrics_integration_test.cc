// `serve --metrics-address` through a real busy unstage: a volume staged under an rshared
// directory, a process in a private mount namespace holding a copy, scraped over HTTP.
#include <signal.h>
#include <sys/mount.h>

#include <filesystem>
#include <regex>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/metrics/scrape.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// The value of the sample `name{labels}` in `text`, or -1 when it is not there.
double Sample(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

class MetricsIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(kubelet());
    ASSERT_EQ(mount(kubelet().c_str(), kubelet().c_str(), nullptr, MS_BIND, nullptr), 0);
    bound_ = true;
    ASSERT_EQ(mount(nullptr, kubelet().c_str(), nullptr, MS_SHARED | MS_REC, nullptr), 0);
    std::filesystem::create_directories(dir_ / "plugin");
    plugin_ = std::make_unique<Plugin>(
        RBDCSI_BINARY, dir_ / "plugin",
        std::vector<std::string>{"--metrics-address", "127.0.0.1:0", "--unstage-wait", "0",
                                 "--kubelet-dir", kubelet()});
    std::string why;
    ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
    std::smatch m;
    std::string err;
    ASSERT_TRUE(WaitFor(
        [&] {
          err = plugin_->Stderr();
          return std::regex_search(err, m, std::regex("serving metrics on \\S+ \\(port (\\d+)\\)"));
        },
        std::chrono::seconds(10)))
        << err;
    port_ = std::stoi(m[1]);
  }

  void TearDown() override {
    holder_.reset();
    if (plugin_) {
      EXPECT_EQ(plugin_->Stop(), 0) << plugin_->Stderr();
    }
    EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
    if (bound_) {
      EXPECT_EQ(umount(kubelet().c_str()), 0);
    }
    EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
    CleanUpUnder(dir_.path());
  }

  std::string kubelet() const { return dir_ / "kubelet"; }
  std::string staging() const { return dir_ / "kubelet/globalmount"; }

  void Stage() {
    absl::StatusOr<std::string> id = CreateAndStage(*plugin_, "metrics", staging());
    ASSERT_TRUE(id.ok()) << id.status();
    volume_id_ = *id;
  }

  grpc::Status Unstage() { return rbdcsi::Unstage(*plugin_, volume_id_, staging()); }

  TempDir dir_{"metrics"};
  bool bound_ = false;
  std::unique_ptr<Plugin> plugin_;
  std::unique_ptr<ChildProcess> holder_;
  std::string volume_id_;
  int port_ = 0;
};

TEST_F(MetricsIntegrationTest, ABusyUnstageShowsInTheMetricsUntilItFinishes) {
  Stage();
  std::string text = Scrape(port_);
  EXPECT_EQ(Sample(text, "rbdcsi_volumes{step=\"staged\"}"), 1) << text;
  EXPECT_EQ(
      Sample(text, "rbdcsi_rpc_duration_seconds_count{code=\"OK\",method=\"NodeStageVolume\"}"), 1)
      << text;
  EXPECT_GE(
      Sample(text, "rbdcsi_command_duration_seconds_count{command=\"mkfs.ext4\",result=\"ok\"}"), 1)
      << text;

  holder_ = std::make_unique<ChildProcess>(
      // A private copy with a file open on the volume: the staging directory's removal cannot
      // release that (issue 14), so unstage stays busy until the holder goes.
      std::vector<std::string>{"unshare", "--mount", "--propagation", "private", "sh", "-c",
                               "exec 3<" + staging() + "; exec sleep 1000"},
      dir_.path());
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/comm")) == "sleep\n"; },
      std::chrono::seconds(10)));
  grpc::Status st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();

  text = Scrape(port_);
  EXPECT_EQ(Sample(text, "rbdcsi_unstage_attempts_total{outcome=\"busy\"}"), 1) << text;
  EXPECT_EQ(Sample(text, "rbdcsi_busy_volumes"), 1) << text;
  EXPECT_GT(Sample(text, absl::StrCat("rbdcsi_unstage_blocked_since_seconds{volume_id=\"",
                                      volume_id_, "\"}")),
            1.7e9)
      << text;
  EXPECT_GE(Sample(text,
                   "rbdcsi_holders_found_total{command=\"sleep\",kind=\"mount\","
                   "propagation=\"private\"}"),
            1)
      << text;
  EXPECT_GE(Sample(text, "rbdcsi_holder_scan_duration_seconds_count"), 1) << text;

  holder_->Signal(SIGKILL);
  ASSERT_TRUE(holder_->Wait(std::chrono::seconds(10)).has_value());
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  text = Scrape(port_);
  EXPECT_EQ(Sample(text, "rbdcsi_unstage_attempts_total{outcome=\"unmapped\"}"), 1) << text;
  EXPECT_EQ(Sample(text, "rbdcsi_busy_volumes"), 0) << text;
  EXPECT_THAT(text, Not(HasSubstr(absl::StrCat("volume_id=\"", volume_id_))));
  EXPECT_EQ(Sample(text, "rbdcsi_volumes{step=\"staged\"}"), 0) << text;
}

}  // namespace
}  // namespace rbdcsi
