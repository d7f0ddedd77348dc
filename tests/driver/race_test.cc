// Issue 8, "Races", second line: 64 volume ids naming 16 images (every spelling of an image the
// codec accepts) staged, published, unpublished and unstaged at once, with duplicates, over the
// socket of the real server on the loop backend. A watcher woken by the kernel at every change
// of the mount table (poll() on /proc/self/mountinfo) checks that no image is ever mounted
// through two devices or at two staging paths. Then kubelet's way out must leave nothing.
// Root only: real loop devices, mkfs and mounts.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "mounter/mountinfo.h"
#include "tests/driver/race_plan.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;
using ::testing::IsEmpty;

constexpr int kImages = 16;
constexpr int kRounds = 1;  // ~8 s a round on 2 busy cores
constexpr int kThreads = 8;

// Reads the mount table at every change the kernel reports and checks, for each image, that
// its mounts under the kubelet directory show one device and one staging path at most.
class MountWatcher {
 public:
  MountWatcher(std::string kubelet_dir, std::vector<RaceName> names)
      : kubelet_(std::move(kubelet_dir)), names_(std::move(names)) {
    stop_ = eventfd(0, EFD_CLOEXEC);
    fd_ = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    Check(ReadTable());  // read once before the calls start: poll() then waits for a change
    thread_ = std::thread([this] { Run(); });
  }
  ~MountWatcher() { Stop(); }

  void Stop() {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    if (write(stop_, &one, sizeof one) < 0) ADD_FAILURE() << "cannot stop the watcher";
    thread_.join();
    close(stop_);
    close(fd_);
  }
  const std::vector<std::string>& violations() const { return violations_; }
  int wakes() const { return wakes_; }
  int max_devices_per_image() const { return max_devices_; }

 private:
  std::string ReadTable() {
    std::string text;
    char buf[65536];
    lseek(fd_, 0, SEEK_SET);
    for (ssize_t n; (n = read(fd_, buf, sizeof buf)) > 0;) text.append(buf, n);
    return text;
  }

  void Run() {
    for (;;) {
      pollfd fds[2] = {{fd_, POLLPRI, 0}, {stop_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents != 0) return;
      ++wakes_;
      Check(ReadTable());
    }
  }

  // The name owning `mount_point` (DIR/stage/N or DIR/pods/N/m), and whether it is staging.
  std::optional<std::pair<int, bool>> Owner(const std::string& mount_point) const {
    for (const char* kind : {"/stage/", "/pods/"}) {
      const std::string prefix = kubelet_ + kind;
      if (!absl::StartsWith(mount_point, prefix)) continue;
      std::string rest = mount_point.substr(prefix.size());
      rest = rest.substr(0, rest.find('/'));
      int n = 0;
      if (absl::SimpleAtoi(rest, &n)) return std::make_pair(n, kind[1] == 's');
    }
    return std::nullopt;
  }

  void Check(const std::string& text) {
    absl::StatusOr<std::vector<MountInfo>> table = ParseMountInfo(text);
    if (!table.ok()) {
      violations_.push_back(table.status().ToString());
      return;
    }
    std::map<int, std::set<std::string>> devices, stagings;  // by image
    for (const MountInfo& m : *table) {
      auto owner = Owner(m.mount_point);
      if (!owner) continue;
      const int image = names_[owner->first].image;
      devices[image].insert(absl::StrCat(m.major, ":", m.minor));
      if (owner->second) stagings[image].insert(m.mount_point);
    }
    for (const auto& [image, devs] : devices) {
      max_devices_ = std::max(max_devices_, static_cast<int>(devs.size()));
      if (devs.size() > 1 || stagings[image].size() > 1) {
        violations_.push_back(absl::StrFormat("image d%02d: %d devices, %d staging mounts", image,
                                              devs.size(), stagings[image].size()));
      }
    }
  }

  std::string kubelet_;
  std::vector<RaceName> names_;
  int fd_ = -1, stop_ = -1;
  std::thread thread_;
  std::vector<std::string> violations_;
  int wakes_ = 0;
  int max_devices_ = 0;
};

class RaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // --unstage-wait 0: an unstage racing a publish finds the device held by the bind and
    // must refuse at once, not wait for a holder that will not go.
    plugin_ = std::make_unique<Plugin>(RBDCSI_BINARY, dir_.path(),
                                       std::vector<std::string>{"--unstage-wait", "0"});
    std::string why;
    ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
    for (int i = 0; i < kImages; ++i) {
      csi::v1::CreateVolumeRequest req;
      req.set_name(absl::StrFormat("d%02d", i));
      req.mutable_capacity_range()->set_required_bytes(16 << 20);
      *req.add_volume_capabilities() = RaceCapability();
      csi::v1::CreateVolumeResponse resp;
      grpc::ClientContext ctx;
      grpc::Status st = plugin_->controller().CreateVolume(&ctx, req, &resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
    }
    for (size_t n = 0; n < names_.size(); ++n) {
      fs::create_directories(absl::StrCat(kubelet(), "/pods/", n));
    }
    fs::create_directories(kubelet() + "/stage");
  }

  void TearDown() override {
    if (plugin_) {
      EXPECT_EQ(plugin_->Stop(), 0);
    }
    CleanUpUnder(dir_.path());
  }

  std::string kubelet() const { return plugin_->kubelet_dir(); }
  std::string Staging(size_t n) const { return absl::StrCat(kubelet(), "/stage/", n); }
  std::string Target(size_t n) const { return absl::StrCat(kubelet(), "/pods/", n, "/m"); }

  grpc::Status Call(RaceOp op, size_t n) {
    const RaceName& name = names_[n];
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    switch (op) {
      case RaceOp::kStage: {
        csi::v1::NodeStageVolumeResponse resp;
        return plugin_->node().NodeStageVolume(&ctx, RaceStage(name, Staging(n)), &resp);
      }
      case RaceOp::kPublish: {
        csi::v1::NodePublishVolumeResponse resp;
        return plugin_->node().NodePublishVolume(&ctx, RacePublish(name, Staging(n), Target(n)),
                                                 &resp);
      }
      case RaceOp::kUnpublish: {
        csi::v1::NodeUnpublishVolumeResponse resp;
        return plugin_->node().NodeUnpublishVolume(&ctx, RaceUnpublish(name, Target(n)), &resp);
      }
      case RaceOp::kUnstage: {
        csi::v1::NodeUnstageVolumeResponse resp;
        return plugin_->node().NodeUnstageVolume(&ctx, RaceUnstage(name, Staging(n)), &resp);
      }
    }
    return grpc::Status(grpc::StatusCode::INTERNAL, "unknown op");
  }

  static bool Allowed(RaceOp op, grpc::StatusCode code) {
    return code == grpc::StatusCode::OK || code == grpc::StatusCode::ABORTED ||
           code == grpc::StatusCode::FAILED_PRECONDITION ||
           (op == RaceOp::kPublish && code == grpc::StatusCode::NOT_FOUND);
  }

  void Round(std::mt19937& rng) {
    const std::vector<std::pair<RaceOp, size_t>> calls = RaceRound(names_.size(), rng);
    RunParallel(kThreads, calls.size(), [&](size_t i) {
      const auto [op, n] = calls[i];
      grpc::Status st = Call(op, n);
      std::lock_guard<std::mutex> lock(mu_);
      ++codes_[st.error_code()];
      if (op == RaceOp::kStage && st.ok()) staged_by_[names_[n].image].insert(n);
      if (!Allowed(op, st.error_code())) {
        unexpected_.push_back(absl::StrCat(names_[n].id, ": ", st.error_message()));
      }
    });
  }

  TempDir dir_{"race"};
  std::unique_ptr<Plugin> plugin_;
  const std::vector<RaceName> names_ = RaceNames(kImages);
  std::mutex mu_;
  std::map<grpc::StatusCode, int> codes_;
  std::map<int, std::set<size_t>> staged_by_;
  std::vector<std::string> unexpected_;
};

TEST_F(RaceTest, NoImageIsEverMountedTwiceOverTheSocketAndNothingIsLeft) {
  MountWatcher watcher(kubelet(), names_);
  std::mt19937 rng(8);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (int round = 0; round < kRounds; ++round) {
    Round(rng);
    std::cout << absl::StrFormat("race over the socket: round %d done at %.1f s\n", round,
                                 seconds());
  }
  // Kubelet's way out, as parallel as kubelet is: unpublish every target, then unstage every
  // name; each must succeed (retrying, as kubelet does, only while another call on the image
  // runs).
  for (RaceOp op : {RaceOp::kUnpublish, RaceOp::kUnstage}) {
    RunParallel(kThreads, names_.size(), [&, op](size_t n) {
      grpc::Status st = Call(op, n);
      for (int i = 0; i < 100 && st.error_code() == grpc::StatusCode::ABORTED; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        st = Call(op, n);
      }
      std::lock_guard<std::mutex> lock(mu_);
      EXPECT_TRUE(st.ok()) << names_[n].id << ": " << st.error_message();
    });
  }
  watcher.Stop();
  std::cout << absl::StrFormat("race over the socket: cleaned up at %.1f s\n", seconds());

  EXPECT_THAT(watcher.violations(), IsEmpty());
  EXPECT_THAT(unexpected_, IsEmpty());
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
  EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
  EXPECT_TRUE(fs::is_empty(plugin_->state_dir() + "/volumes"));
  int shared = 0;
  for (const auto& [image, names] : staged_by_) shared += names.size() > 1;
  EXPECT_GT(shared, 0);  // the image changed hands between its names: the race was real
  EXPECT_GT(codes_[grpc::StatusCode::ABORTED] + codes_[grpc::StatusCode::FAILED_PRECONDITION], 0);
  std::string summary;
  for (const auto& [code, count] : codes_)
    absl::StrAppend(&summary, " code", static_cast<int>(code), "=", count);
  std::cout << "race over the socket: " << names_.size() << " volume ids of " << kImages
            << " images, " << kRounds << " rounds; " << shared
            << " images staged under more than one name; " << watcher.wakes()
            << " mount-table changes seen;" << summary << std::endl;
}

}  // namespace
}  // namespace rbdcsi
