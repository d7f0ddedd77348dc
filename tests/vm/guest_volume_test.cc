#include "tests/vm/guest_volume_test.h"

#include <signal.h>
#include <sys/mount.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace rbdcsi {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

namespace {

// What each device `mapper` has mapped serves, as the kernel and the daemons show it: krbd
// "POOL/NAMESPACE/IMAGE" from /sys/bus/rbd/devices, nbd the command line of the rbd-nbd daemon
// of each /sys/block/nbdN that has one.
std::vector<std::string> Mappings(const std::string& mapper) {
  std::vector<std::string> out;
  auto attribute = [](const std::filesystem::path& file) {
    return std::string(absl::StripTrailingAsciiWhitespace(ReadFileOrEmpty(file)));
  };
  if (mapper == "nbd") {
    for (const auto& entry : std::filesystem::directory_iterator("/sys/block")) {
      const std::string pid = attribute(entry.path() / "pid");
      if (!absl::StartsWith(entry.path().filename().string(), "nbd") || pid.empty() ||
          ReadFileOrEmpty("/proc/" + pid + "/comm") != "rbd-nbd\n") {
        continue;
      }
      std::string cmdline = ReadFileOrEmpty("/proc/" + pid + "/cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      out.push_back(cmdline);
    }
    return out;
  }
  for (const auto& entry : std::filesystem::directory_iterator("/sys/bus/rbd/devices")) {
    out.push_back(absl::StrCat(attribute(entry.path() / "pool"), "/",
                               attribute(entry.path() / "pool_ns"), "/",
                               attribute(entry.path() / "name")));
  }
  return out;
}

}  // namespace

std::string* GuestVolumeTest::image_ = nullptr;
TempDir* GuestVolumeTest::suite_dir_ = nullptr;

std::string Env(const char* name) {
  const char* value = getenv(name);
  return value == nullptr ? "" : value;
}

std::string RunToEnd(const std::vector<std::string>& argv, const std::string& dir, int want) {
  ChildProcess child(argv, dir);
  std::optional<int> code = child.Wait(std::chrono::seconds(60));
  EXPECT_EQ(code, want) << absl::StrJoin(argv, " ") << ": " << child.Stderr();
  return child.Stdout();
}

void GuestVolumeTest::SetUpTestSuite() {
  suite_dir_ = new TempDir("vm-suite");
  image_ = new std::string(
      absl::StrCat("vm-", ::testing::UnitTest::GetInstance()->current_test_suite()->name()));
  Rbd({"create", "rbd/" + *image_, "--size", "64"});
}

// The image stays: the cluster is thrown away after the run (rbdcsi-test-cluster run). Removing
// it would cost an rbd call, and fail for up to 30 s after a case killed its rbd-nbd daemon,
// whose watch lingers until it times out.
void GuestVolumeTest::TearDownTestSuite() {
  delete image_;
  image_ = nullptr;
  delete suite_dir_;
  suite_dir_ = nullptr;
}

void GuestVolumeTest::SetUp() {
  ASSERT_FALSE(Env("RBDCSI_CEPH_CONF").empty()) << "run me under rbdcsi-test-cluster run";
  // kubelet's directory is an rshared mount; make ours one too.
  ASSERT_EQ(mount(dir_.path().c_str(), dir_.path().c_str(), nullptr, MS_BIND, nullptr), 0);
  ASSERT_EQ(mount(nullptr, dir_.path().c_str(), nullptr, MS_SHARED | MS_REC, nullptr), 0);
  std::filesystem::create_directories(staging());
  // kubelet makes the parent of a target path; the plugin only the target itself.
  std::filesystem::create_directories(std::filesystem::path(target()).parent_path());
  ASSERT_EQ(MappedDevice(), "") << "an earlier case left the image mapped";
  plugin_ = std::make_unique<Plugin>(RBDCSI_BINARY, dir_.path(), PluginFlags());
  std::string why;
  ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
}

std::vector<std::string> GuestVolumeTest::PluginFlags(const std::vector<std::string>& extra) const {
  std::vector<std::string> flags = {"--no-controller",
                                    "--rbd-program",
                                    "rbd",
                                    "--key-dir",
                                    dir_ / "keys",
                                    "--unstage-wait",
                                    "10",
                                    "--default-mapper",
                                    "krbd"};
  flags.insert(flags.end(), extra.begin(), extra.end());
  return flags;
}

void GuestVolumeTest::RestartPlugin(const std::vector<std::string>& extra) {
  ASSERT_EQ(plugin_->Stop(), 0) << plugin_->Stderr();
  plugin_ = std::make_unique<Plugin>(RBDCSI_BINARY, dir_.path(), PluginFlags(extra));
  std::string why;
  ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
}

void GuestVolumeTest::TearDown() {
  if (holder_) holder_->Signal(SIGKILL);
  holder_.reset();
  if (plugin_) {
    EXPECT_EQ(plugin_->Stop(), 0) << plugin_->Stderr();
  }
  EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
  const std::string device = MappedDevice();
  EXPECT_EQ(device, "") << "the case left its image mapped";
  // The last resort after a failure: unmount, then unmap what this case mapped.
  CleanUpUnder(dir_.path());
  if (!device.empty()) {
    std::vector<std::string> unmap = {"rbd", "device", "unmap", device};
    if (mapper_ == "nbd") {
      unmap.insert(unmap.end(), {"-t", "nbd"});
    } else {
      unmap.insert(unmap.end(), {"-o", "noudev"});
    }
    RunToEnd(unmap, dir_.path());
  }
  umount2(dir_.path().c_str(), MNT_DETACH);
}

std::string GuestVolumeTest::Rbd(std::vector<std::string> args) {
  args.insert(args.begin(), {"rbd", "-c", Env("RBDCSI_CEPH_CONF")});
  return RunToEnd(args, suite_dir_->path());
}

std::string GuestVolumeTest::DeviceList() const {
  std::vector<std::string> list = {"rbd", "device", "list", "--format", "json"};
  if (mapper_ == "nbd") list.insert(list.end(), {"-t", "nbd"});
  return std::string(absl::StripAsciiWhitespace(RunToEnd(list, dir_.path())));
}

std::string GuestVolumeTest::MappedDevice() const {
  if (mapper_ == "nbd") {
    for (const auto& entry : std::filesystem::directory_iterator("/sys/block")) {
      const std::string name = entry.path().filename();
      if (!absl::StartsWith(name, "nbd")) continue;
      const std::string pid(absl::StripAsciiWhitespace(ReadFileOrEmpty(entry.path() / "pid")));
      if (!pid.empty() && ReadFileOrEmpty("/proc/" + pid + "/comm") == "rbd-nbd\n") {
        return "/dev/" + name;
      }
    }
    return "";
  }
  for (const auto& entry : std::filesystem::directory_iterator("/sys/bus/rbd/devices")) {
    if (absl::StripTrailingAsciiWhitespace(ReadFileOrEmpty(entry.path() / "name")) == image()) {
      return "/dev/rbd" + entry.path().filename().string();
    }
  }
  return "";
}

csi::v1::VolumeCapability GuestVolumeTest::Capability() const {
  csi::v1::VolumeCapability cap;
  if (block_) {
    cap.mutable_block();
  } else {
    cap.mutable_mount()->set_fs_type("ext4");
  }
  cap.mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  return cap;
}

grpc::Status GuestVolumeTest::StageOn(Plugin& plugin, const std::string& staging_path,
                                      const std::string& mapper) {
  csi::v1::NodeStageVolumeRequest req;
  req.set_volume_id(VolumeId());
  req.set_staging_target_path(staging_path);
  *req.mutable_volume_capability() = Capability();
  auto& ctx = *req.mutable_volume_context();
  ctx["mapper"] = mapper;
  ctx["pool"] = "rbd";
  ctx["image"] = image();
  if (!rados_namespace_.empty()) ctx["radosNamespace"] = rados_namespace_;
  ctx["monitors"] = Env("RBDCSI_CEPH_MON");
  (*req.mutable_secrets())["userID"] = Env("RBDCSI_CEPH_USER");
  (*req.mutable_secrets())["userKey"] =
      std::string(absl::StripAsciiWhitespace(ReadFileOrEmpty(Env("RBDCSI_CEPH_KEYFILE"))));
  csi::v1::NodeStageVolumeResponse resp;
  grpc::ClientContext context;
  return plugin.node().NodeStageVolume(&context, req, &resp);
}

grpc::Status GuestVolumeTest::UnstageOn(Plugin& plugin, const std::string& staging_path) {
  return rbdcsi::Unstage(plugin, VolumeId(), staging_path);
}

grpc::Status GuestVolumeTest::Publish() {
  csi::v1::NodePublishVolumeRequest req;
  req.set_volume_id(VolumeId());
  req.set_staging_target_path(staging());
  req.set_target_path(target());
  *req.mutable_volume_capability() = Capability();
  csi::v1::NodePublishVolumeResponse resp;
  grpc::ClientContext context;
  return plugin_->node().NodePublishVolume(&context, req, &resp);
}

grpc::Status GuestVolumeTest::Unpublish() {
  csi::v1::NodeUnpublishVolumeRequest req;
  req.set_volume_id(VolumeId());
  req.set_target_path(target());
  csi::v1::NodeUnpublishVolumeResponse resp;
  grpc::ClientContext context;
  return plugin_->node().NodeUnpublishVolume(&context, req, &resp);
}

csi::v1::NodeGetVolumeStatsResponse GuestVolumeTest::Stats(const std::string& path) {
  csi::v1::NodeGetVolumeStatsRequest req;
  req.set_volume_id(VolumeId());
  req.set_volume_path(path);
  csi::v1::NodeGetVolumeStatsResponse resp;
  grpc::ClientContext context;
  grpc::Status st = plugin_->node().NodeGetVolumeStats(&context, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp;
}

void GuestVolumeTest::StartHolder(const std::string& propagation, const std::string& script) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> holder =
      StartNamespaceHolder(propagation, script, dir_.path(), kGuestHolderBound);
  ASSERT_THAT(holder, IsOk());
  holder_ = std::move(*holder);
}

void GuestVolumeTest::KillHolder() {
  ASSERT_TRUE(KillAndWait(*holder_, std::chrono::seconds(10)));
  holder_.reset();
}

// Stage, publish, write, unpublish, unstage: the device leaves the kernel's list and rbd's;
// staged again (a new mapping), the data is still there. The suite's image may carry an earlier
// case's filesystem: what this case wrote is what it reads back.
void GuestVolumeTest::Lifecycle() {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string device = MappedDevice();
  ASSERT_THAT(device, HasSubstr(mapper_ == "nbd" ? "/dev/nbd" : "/dev/rbd"));
  EXPECT_THAT(DeviceList(), HasSubstr(absl::StrCat("\"", image(), "\"")));
  st = Publish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string data = absl::StrCat("written through ", mapper_, " by pid ", getpid(), "\n");
  { std::ofstream(target() + "/data") << data; }
  st = Unpublish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
  EXPECT_EQ(DeviceList(), "[]");

  st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(ReadFileOrEmpty(staging() + "/data"), data);
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedDevice(), "");
}

// A volume whose image lives in a RADOS namespace (a cluster configured with one, or the
// radosNamespace parameter): staged twice it is mapped once, from that namespace, and unstage
// unmaps it. (Both mappers' listings used to leave such devices out: a retried stage would map
// the image again, and unstage answered OK while the device stayed mapped.)
void GuestVolumeTest::NamespacedLifecycle() {
  rados_namespace_ = "tenant-" + mapper_;
  const std::string spec = absl::StrCat("rbd/", rados_namespace_, "/", image());
  Rbd({"namespace", "create", "rbd/" + rados_namespace_});
  Rbd({"create", spec, "--size", "64"});
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_THAT(Mappings(mapper_), ElementsAre(HasSubstr(spec)));
  st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_THAT(Mappings(mapper_), ElementsAre(HasSubstr(spec)));
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_THAT(Mappings(mapper_), IsEmpty());
  EXPECT_EQ(DeviceList(), "[]");
}

// The seed incident on a real device, as issue 14 resolves it: a private mount namespace made
// after staging keeps a copy of the staging mount. `rbdcsi holders` names it (pid, command,
// propagation); the first unstage removes the staging directory, so the kernel detaches the
// copy, and unmaps: the device is released while the holder keeps running, and the holder sees
// nothing at the path any more.
void GuestVolumeTest::SeedIncident() {
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string device = MappedDevice();
  StartHolder("private", "true");
  const std::string table = RunToEnd({RBDCSI_BINARY, "holders", device}, dir_.path(), 1);
  std::cout << "rbdcsi holders " << device << ":\n" << table;
  EXPECT_THAT(table, HasSubstr(absl::StrCat(" ", holder_->pid(), " ")));
  EXPECT_THAT(table, HasSubstr("sleep"));
  // Beside it: the host's own staging mount (pending: unstage unmounts it) and, for nbd, the
  // rbd-nbd daemon's descriptor (the plugin leaves the mapper's own server out; the CLI shows all).
  const nlohmann::json json = nlohmann::json::parse(
      RunToEnd({RBDCSI_BINARY, "holders", "--json", device}, dir_.path(), 1), nullptr, false);
  ASSERT_TRUE(json.is_object()) << json.dump();
  EXPECT_EQ(json["device"], device);
  int found = 0;
  for (const nlohmann::json& h : json["holders"]) {
    if (h.value("pid", 0) != holder_->pid()) continue;
    ++found;
    EXPECT_EQ(h["command"], "sleep");
    EXPECT_EQ(h["kind"], "mount");
    EXPECT_EQ(h["propagation"], "private");
    EXPECT_EQ(h["mount_point"], staging());
  }
  EXPECT_EQ(found, 1) << json.dump();

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

}  // namespace rbdcsi
