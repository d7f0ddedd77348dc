// Runs inside the guest VM (tests/vm/vm-run) under `rbdcsi-test-cluster run`: the real kernel rbd
// driver and a real single-node cluster, driven through `rbdcsi serve`'s socket as kubelet does.
// The cluster's variables (RBDCSI_CEPH_*) come from the cluster's env file.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string Env(const char* name) {
  const char* value = getenv(name);
  return value == nullptr ? "" : value;
}

ino_t MountNamespaceOf(pid_t pid) {
  struct stat st {};
  if (stat(absl::StrCat("/proc/", pid, "/ns/mnt").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

// Runs a program to its end (60 s at most) and returns its stdout; EXPECTs exit code `want`.
std::string RunToEnd(const std::vector<std::string>& argv, const std::string& dir, int want = 0) {
  ChildProcess child(argv, dir);
  std::optional<int> code = child.Wait(std::chrono::seconds(60));
  EXPECT_EQ(code, want) << argv[0] << " " << argv[1] << ": " << child.Stderr();
  return child.Stdout();
}

class KrbdGuestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(Env("RBDCSI_CEPH_CONF").empty()) << "run me under rbdcsi-test-cluster run";
    // kubelet's directory is an rshared mount; make ours one too.
    ASSERT_EQ(mount(dir_.path().c_str(), dir_.path().c_str(), nullptr, MS_BIND, nullptr), 0);
    ASSERT_EQ(mount(nullptr, dir_.path().c_str(), nullptr, MS_SHARED | MS_REC, nullptr), 0);
    std::filesystem::create_directories(staging());
    // kubelet makes the parent of a target path; the plugin only the target itself.
    std::filesystem::create_directories(std::filesystem::path(target()).parent_path());
    image_ = absl::StrCat("vm-", mapper_, "-",
                          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    Rbd({"create", "rbd/" + image_, "--size", "64"});
    plugin_ = std::make_unique<Plugin>(RBDCSI_BINARY, dir_.path(), PluginFlags());
    std::string why;
    ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
  }

  std::vector<std::string> PluginFlags() const {
    std::vector<std::string> flags = {"--rbd-program",  "rbd", "--key-dir",        dir_ / "keys",
                                      "--unstage-wait", "10",  "--default-mapper", "krbd"};
    flags.insert(flags.end(), extra_flags_.begin(), extra_flags_.end());
    return flags;
  }

  void TearDown() override {
    if (holder_) holder_->Signal(SIGKILL);
    holder_.reset();
    EXPECT_EQ(plugin_->Stop(), 0) << plugin_->Stderr();
    EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
    EXPECT_EQ(DeviceList(), "[]");
    // The last resort after a failure: unmount, then unmap what this test mapped.
    CleanUpUnder(dir_.path());
    if (const std::string device = MappedDevice(); !device.empty()) {
      std::vector<std::string> unmap = {"rbd", "device", "unmap", device};
      unmap.insert(unmap.end(), TypeArgs().begin(), TypeArgs().end());
      RunToEnd(unmap, dir_.path());
    }
    Rbd({"rm", "rbd/" + image_});
    umount2(dir_.path().c_str(), MNT_DETACH);
  }

  std::string Rbd(std::vector<std::string> args) {
    args.insert(args.begin(), {"rbd", "-c", Env("RBDCSI_CEPH_CONF")});
    return RunToEnd(args, dir_.path());
  }
  // What the rbd CLI needs to address this mapper's devices.
  const std::vector<std::string>& TypeArgs() const {
    static const auto* const krbd = new std::vector<std::string>{"-o", "noudev"};
    static const auto* const nbd = new std::vector<std::string>{"-t", "nbd"};
    return mapper_ == "nbd" ? *nbd : *krbd;
  }
  std::string DeviceList() {
    std::vector<std::string> list = {"rbd", "device", "list", "--format", "json"};
    if (mapper_ == "nbd") list.insert(list.end(), {"-t", "nbd"});
    return std::string(absl::StripAsciiWhitespace(RunToEnd(list, dir_.path())));
  }

  std::string VolumeId() const { return "0001-vm-" + image_; }
  std::string staging() const { return dir_ / "kubelet/plugins/globalmount"; }
  std::string target() const { return dir_ / "kubelet/pods/pod1/volume"; }

  csi::v1::VolumeCapability Capability() const {
    csi::v1::VolumeCapability cap;
    if (block_) {
      cap.mutable_block();
    } else {
      cap.mutable_mount()->set_fs_type("ext4");
    }
    cap.mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    return cap;
  }

  grpc::Status Stage() { return StageOn(*plugin_, staging(), mapper_); }
  grpc::Status StageOn(Plugin& plugin, const std::string& staging_path, const std::string& mapper) {
    csi::v1::NodeStageVolumeRequest req;
    req.set_volume_id(VolumeId());
    req.set_staging_target_path(staging_path);
    *req.mutable_volume_capability() = Capability();
    auto& ctx = *req.mutable_volume_context();
    ctx["mapper"] = mapper;
    ctx["pool"] = "rbd";
    ctx["image"] = image_;
    ctx["monitors"] = Env("RBDCSI_CEPH_MON");
    (*req.mutable_secrets())["userID"] = Env("RBDCSI_CEPH_USER");
    (*req.mutable_secrets())["userKey"] =
        std::string(absl::StripAsciiWhitespace(ReadFileOrEmpty(Env("RBDCSI_CEPH_KEYFILE"))));
    csi::v1::NodeStageVolumeResponse resp;
    grpc::ClientContext context;
    return plugin.node().NodeStageVolume(&context, req, &resp);
  }

  grpc::Status Unstage() { return UnstageOn(*plugin_, staging()); }
  grpc::Status UnstageOn(Plugin& plugin, const std::string& staging_path) {
    csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id(VolumeId());
    req.set_staging_target_path(staging_path);
    csi::v1::NodeUnstageVolumeResponse resp;
    grpc::ClientContext context;
    return plugin.node().NodeUnstageVolume(&context, req, &resp);
  }

  grpc::Status Publish() {
    csi::v1::NodePublishVolumeRequest req;
    req.set_volume_id(VolumeId());
    req.set_staging_target_path(staging());
    req.set_target_path(target());
    *req.mutable_volume_capability() = Capability();
    csi::v1::NodePublishVolumeResponse resp;
    grpc::ClientContext context;
    return plugin_->node().NodePublishVolume(&context, req, &resp);
  }

  grpc::Status Unpublish() {
    csi::v1::NodeUnpublishVolumeRequest req;
    req.set_volume_id(VolumeId());
    req.set_target_path(target());
    csi::v1::NodeUnpublishVolumeResponse resp;
    grpc::ClientContext context;
    return plugin_->node().NodeUnpublishVolume(&context, req, &resp);
  }

  // The device that maps this test's image, "" when none: for krbd from the kernel's own list,
  // for nbd from rbd's.
  std::string MappedDevice() {
    if (mapper_ == "nbd") {
      const nlohmann::json list = nlohmann::json::parse(DeviceList(), nullptr, false);
      for (const nlohmann::json& entry : list.is_array() ? list : nlohmann::json::array()) {
        if (entry.value("image", "") == image_) return entry.value("device", "");
      }
      return "";
    }
    for (const auto& entry : std::filesystem::directory_iterator("/sys/bus/rbd/devices")) {
      if (absl::StripTrailingAsciiWhitespace(ReadFileOrEmpty(entry.path() / "name")) == image_) {
        return "/dev/rbd" + entry.path().filename().string();
      }
    }
    return "";
  }

  // Starts `sh -c script` in a new mount namespace with the given propagation, and waits until
  // it has reached its final `sleep`.
  void StartHolder(const std::string& propagation, const std::string& script) {
    holder_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"unshare", "--mount", "--propagation", propagation, "sh", "-c",
                                 script + "; exec sleep 1000"},
        dir_.path());
    const ino_t ours = MountNamespaceOf(getpid());
    ASSERT_TRUE(WaitFor(
        [&] {
          return MountNamespaceOf(holder_->pid()) != ours &&
                 ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/comm")) == "sleep\n";
        },
        std::chrono::seconds(30)));
  }

  void KillHolder() {
    holder_->Signal(SIGKILL);
    ASSERT_TRUE(holder_->Wait(std::chrono::seconds(10)).has_value());
    holder_.reset();
  }

  // The cases both mappers run (below).
  void Lifecycle();
  void SeedIncident();

  csi::v1::NodeGetVolumeStatsResponse Stats(const std::string& path) {
    csi::v1::NodeGetVolumeStatsRequest req;
    req.set_volume_id(VolumeId());
    req.set_volume_path(path);
    csi::v1::NodeGetVolumeStatsResponse resp;
    grpc::ClientContext context;
    grpc::Status st = plugin_->node().NodeGetVolumeStats(&context, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  std::string mapper_ = "krbd";
  bool block_ = false;  // access type block (no filesystem) rather than an ext4 mount
  std::vector<std::string> extra_flags_;  // for the plugin
  TempDir dir_{"vm-krbd"};
  std::string image_;
  std::unique_ptr<Plugin> plugin_;
  std::unique_ptr<ChildProcess> holder_;
};

// Stage, publish, write, unpublish, unstage: the device leaves the kernel's list and rbd's;
// staged again (a new mapping), the data is still there.
void KrbdGuestTest::Lifecycle() {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string device = MappedDevice();
  ASSERT_THAT(device, HasSubstr(mapper_ == "nbd" ? "/dev/nbd" : "/dev/rbd"));
  EXPECT_THAT(DeviceList(), HasSubstr(absl::StrCat("\"", image_, "\"")));
  st = Publish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  { std::ofstream(target() + "/data") << "written through krbd\n"; }
  st = Unpublish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
  EXPECT_EQ(DeviceList(), "[]");

  st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(ReadFileOrEmpty(staging() + "/data"), "written through krbd\n");
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
}

// The seed incident on a real device, as issue 14 resolves it: a private mount namespace made
// after staging keeps a copy of the staging mount. `rbdcsi holders` names it; the first unstage
// removes the staging directory, so the kernel detaches the copy, and unmaps: the device is
// released while the holder keeps running, and the holder sees nothing at the path any more.
void KrbdGuestTest::SeedIncident() {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string device = MappedDevice();
  StartHolder("private", "true");
  const std::string holders = RunToEnd({RBDCSI_BINARY, "holders", device}, dir_.path(), /*want=*/1);
  EXPECT_THAT(holders, HasSubstr(absl::StrCat(holder_->pid())));
  EXPECT_THAT(holders, HasSubstr("sleep"));

  const auto start = std::chrono::steady_clock::now();
  st = Unstage();
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::cout << mapper_ << ": private copy: first unstage to device released: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms (emulated guest)" << std::endl;
  EXPECT_EQ(MappedDevice(), "");
  EXPECT_EQ(DeviceList(), "[]");
  EXPECT_EQ(ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/comm")), "sleep\n");
  EXPECT_THAT(ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/mountinfo")),
              Not(HasSubstr(staging())));  // its view of the path is empty
  EXPECT_FALSE(std::filesystem::exists(staging()));
  EXPECT_THAT(plugin_->Stderr(), HasSubstr("removed the staging directory " + staging()));
  KillHolder();
}

TEST_F(KrbdGuestTest, LifecycleOnTheRealModuleKeepsTheData) { Lifecycle(); }
TEST_F(KrbdGuestTest, SeedIncidentPrivateCopyIsReleasedOnTheFirstUnstage) { SeedIncident(); }

// For operators who turn the release off: the private copy is refused as before, named, and the
// device stays mapped; once kubelet has removed the staging directory (as it does), the retry
// unmaps while the holder still runs.
class NoReleaseGuestTest : public KrbdGuestTest {
 protected:
  NoReleaseGuestTest() { extra_flags_ = {"--release-private-copies", "false"}; }
};

TEST_F(NoReleaseGuestTest, SeedIncidentIsRefusedAndKubeletsRemovalLetsTheRetryUnmap) {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string device = MappedDevice();
  StartHolder("private", "true");
  st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(absl::StrCat("pid ", holder_->pid(), " (sleep")));
  EXPECT_THAT(st.error_message(), HasSubstr("propagation private"));
  EXPECT_THAT(st.error_message(), HasSubstr(device));
  EXPECT_THAT(st.error_message(), Not(HasSubstr("waited")));  // no wait for a private copy
  EXPECT_EQ(MappedDevice(), device);  // refused: still mapped, never a forced unmap

  ASSERT_TRUE(std::filesystem::remove(staging()));  // kubelet cleans up
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
  EXPECT_EQ(ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/comm")), "sleep\n");
  KillHolder();
}

// A holder with a file open on the volume (in its own private namespace) is refused and named;
// once it closes the file (exits), the retry unmaps.
TEST_F(KrbdGuestTest, OpenFileHolderIsRefusedUntilItCloses) {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  { std::ofstream(staging() + "/file") << "x\n"; }
  StartHolder("private", "exec 3<" + staging() + "/file");
  st = Unstage();
  ASSERT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(absl::StrCat("pid ", holder_->pid())));
  EXPECT_THAT(st.error_message(), HasSubstr("open"));
  KillHolder();
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
}

// A copy that is a slave of the staging mount goes with the host unmount: unstage waits for
// nothing and succeeds while the holder still runs.
TEST_F(KrbdGuestTest, SlaveCopyIsReleasedAndUnstageSucceeds) {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  StartHolder("slave", "true");
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
  EXPECT_EQ(ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/comm")), "sleep\n");
  KillHolder();
}

}  // namespace
}  // namespace rbdcsi

namespace rbdcsi {
namespace {

// One writer per image: a second plugin instance (another "node", with its own state directory)
// staging the same image read-write with krbd is refused, naming the first's client; once the
// first has unstaged, the second succeeds. Both run on this one kernel, so the first stages
// through rbd-nbd (a client of its own, which krbd's device list does not show); the second
// would otherwise find the first's /dev/rbdN and take it for its own earlier mapping.
TEST_F(KrbdGuestTest, ASecondWriterIsRefusedNamingTheFirstsClient) {
  grpc::Status st = StageOn(*plugin_, staging(), "nbd");
  ASSERT_TRUE(st.ok()) << st.error_message();
  const nlohmann::json status =
      nlohmann::json::parse(Rbd({"status", "rbd/" + image_, "--format", "json"}), nullptr, false);
  ASSERT_TRUE(status.is_object() && status["watchers"].size() == 1u) << status.dump();
  const std::string client = status["watchers"][0].value("address", "");
  ASSERT_FALSE(client.empty());

  TempDir node2{"vm-krbd-node2"};
  const std::string staging2 = node2 / "kubelet/globalmount";  // under its --kubelet-dir
  std::filesystem::create_directories(staging2);
  Plugin other(RBDCSI_BINARY, node2.path(),
               std::vector<std::string>{"--rbd-program", "rbd", "--key-dir", node2 / "keys"});
  std::string why;
  ASSERT_TRUE(other.WaitReady(&why)) << why;
  st = StageOn(other, staging2, "krbd");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr(client));
  EXPECT_EQ(MappedDevice(), "");  // krbd mapped nothing
  EXPECT_THAT(MountsUnder(node2.path()), IsEmpty());

  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = StageOn(other, staging2, "krbd");
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_NE(MappedDevice(), "");
  st = UnstageOn(other, staging2);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(other.Stop(), 0) << other.Stderr();
}

// The same through rbd-nbd, whose unmap cannot refuse: the plugin must refuse for it, and the
// guest kernel must log no I/O error (with_cluster.sh checks dmesg).
class NbdGuestTest : public KrbdGuestTest {
 protected:
  NbdGuestTest() { mapper_ = "nbd"; }
};

TEST_F(NbdGuestTest, LifecycleThroughRbdNbdKeepsTheData) { Lifecycle(); }

// rbd-nbd's daemon is a process of its own: it outlives a restart of the plugin, which finds the
// volume healthy again; once the daemon dies, NodeGetVolumeStats reports the volume abnormal,
// naming the dead daemon, and unstage still cleans up. A block volume: nothing is mounted on the
// device, so the dead daemon costs no filesystem I/O errors.
TEST_F(NbdGuestTest, TheDaemonOutlivesAPluginRestartAndItsDeathIsReported) {
  block_ = true;
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Publish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string device = MappedDevice();
  ASSERT_THAT(device, HasSubstr("/dev/nbd"));
  const std::string sys = "/sys/block/" + device.substr(5);
  const pid_t daemon = std::atoi(ReadFileOrEmpty(sys + "/pid").c_str());
  ASSERT_GT(daemon, 0);

  ASSERT_EQ(plugin_->Stop(), 0) << plugin_->Stderr();
  plugin_ = std::make_unique<Plugin>(RBDCSI_BINARY, dir_.path(), PluginFlags());
  std::string why;
  ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
  EXPECT_EQ(ReadFileOrEmpty(absl::StrCat("/proc/", daemon, "/comm")), "rbd-nbd\n");
  csi::v1::NodeGetVolumeStatsResponse stats = Stats(target());
  EXPECT_FALSE(stats.volume_condition().abnormal()) << stats.volume_condition().message();

  ASSERT_EQ(kill(daemon, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return MappedDevice().empty(); }, std::chrono::seconds(30)));
  stats = Stats(target());
  EXPECT_TRUE(stats.volume_condition().abnormal());
  EXPECT_THAT(stats.volume_condition().message(), HasSubstr("rbd-nbd daemon"));
  std::cout << "dead daemon: " << stats.volume_condition().message() << std::endl;
  std::cout << device << " after the daemon died: pid \"" << ReadFileOrEmpty(sys + "/pid")
            << "\", size " << ReadFileOrEmpty(sys + "/size") << std::flush;

  st = Unpublish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(ReadFileOrEmpty(sys + "/pid"), "");  // the kernel's device is not left connected
}
TEST_F(NbdGuestTest, SeedIncidentPrivateCopyIsReleasedBeforeRbdNbdUnmaps) { SeedIncident(); }

}  // namespace
}  // namespace rbdcsi
