// The whole life of a Ceph volume over the gRPC socket of the real binary, against the live
// test cluster, with the fuse mapper (root: rbd-fuse, loop devices, mounts).
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <rados/librados.hpp>
#include <rbd/librbd.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "gtest/gtest.h"
#include "tests/ceph/cluster_bootstrap.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::map<std::string, std::string> EnvOf(const std::string& dir) {
  std::map<std::string, std::string> env;
  absl::StatusOr<std::vector<std::string>> lines = ReadEnvFile(dir + "/env");
  if (!lines.ok()) return env;
  for (const std::string& l : *lines) env[l.substr(0, l.find('='))] = l.substr(l.find('=') + 1);
  return env;
}

std::string ReadOrEmpty(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class CephE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = EnvOf(RBDCSI_CEPH_TEST_DIR);
    ASSERT_FALSE(env_["RBDCSI_CEPH_MON"].empty());
    absl::StatusOr<std::string> key = ReadSmallFile(env_["RBDCSI_CEPH_KEYFILE"]);
    ASSERT_THAT(key, IsOk());
    secrets_ = {{"userID", env_["RBDCSI_CEPH_USER"]},
                {"userKey", std::string(absl::StripAsciiWhitespace(*key))}};
    StartPlugin(env_["RBDCSI_CEPH_CLUSTER_CONFIG"], "10");
  }
  void TearDown() override {
    if (plugin_) plugin_->Stop();
    CleanUpUnder(dir_.path());
  }

  void StartPlugin(const std::string& config, const std::string& timeout) {
    plugin_ = std::make_unique<Plugin>(
        RBDCSI_BINARY, dir_.path(),
        std::vector<std::string>{"--cluster-config", config, "--ceph-timeout", timeout,
                                 "--fuse-dir", dir_ / "fuse", "--key-dir", dir_ / "keys"});
    std::string why;
    ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
  }

  static csi::v1::VolumeCapability Xfs() {
    csi::v1::VolumeCapability cap;
    cap.mutable_mount()->set_fs_type("xfs");
    cap.mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    return cap;
  }
  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 60) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ctx;
  }

  grpc::Status Create(const std::string& name, int64_t bytes, csi::v1::Volume* out,
                      const csi::v1::VolumeContentSource* source = nullptr) {
    csi::v1::CreateVolumeRequest req;
    req.set_name(name);
    req.mutable_capacity_range()->set_required_bytes(bytes);
    *req.add_volume_capabilities() = Xfs();
    (*req.mutable_parameters())["clusterID"] = env_["RBDCSI_CEPH_CLUSTER_ID"];
    (*req.mutable_parameters())["pool"] = env_["RBDCSI_CEPH_POOL"];
    (*req.mutable_parameters())["mapper"] = "fuse";
    *req.mutable_secrets() = {secrets_.begin(), secrets_.end()};
    if (source != nullptr) *req.mutable_volume_content_source() = *source;
    csi::v1::CreateVolumeResponse resp;
    grpc::Status st = plugin_->controller().CreateVolume(Ctx().get(), req, &resp);
    *out = resp.volume();
    return st;
  }
  grpc::Status Delete(const std::string& volume_id, int seconds = 60) {
    csi::v1::DeleteVolumeRequest req;
    req.set_volume_id(volume_id);
    *req.mutable_secrets() = {secrets_.begin(), secrets_.end()};
    csi::v1::DeleteVolumeResponse resp;
    return plugin_->controller().DeleteVolume(Ctx(seconds).get(), req, &resp);
  }
  grpc::Status Stage(const csi::v1::Volume& vol, const std::string& staging) {
    std::filesystem::create_directories(staging);
    csi::v1::NodeStageVolumeRequest req;
    req.set_volume_id(vol.volume_id());
    req.set_staging_target_path(staging);
    *req.mutable_volume_capability() = Xfs();
    *req.mutable_volume_context() = vol.volume_context();
    *req.mutable_secrets() = {secrets_.begin(), secrets_.end()};
    csi::v1::NodeStageVolumeResponse resp;
    return plugin_->node().NodeStageVolume(Ctx().get(), req, &resp);
  }
  grpc::Status Unstage(const csi::v1::Volume& vol, const std::string& staging) {
    csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id(vol.volume_id());
    req.set_staging_target_path(staging);
    csi::v1::NodeUnstageVolumeResponse resp;
    return plugin_->node().NodeUnstageVolume(Ctx().get(), req, &resp);
  }
  grpc::Status Publish(const csi::v1::Volume& vol, const std::string& staging) {
    // The CO makes the target's parent (a missing one is INVALID_ARGUMENT).
    std::filesystem::create_directories(std::filesystem::path(target()).parent_path());
    csi::v1::NodePublishVolumeRequest req;
    req.set_volume_id(vol.volume_id());
    req.set_staging_target_path(staging);
    req.set_target_path(target());
    *req.mutable_volume_capability() = Xfs();
    *req.mutable_volume_context() = vol.volume_context();
    csi::v1::NodePublishVolumeResponse resp;
    return plugin_->node().NodePublishVolume(Ctx().get(), req, &resp);
  }
  grpc::Status Unpublish(const csi::v1::Volume& vol) {
    csi::v1::NodeUnpublishVolumeRequest req;
    req.set_volume_id(vol.volume_id());
    req.set_target_path(target());
    csi::v1::NodeUnpublishVolumeResponse resp;
    return plugin_->node().NodeUnpublishVolume(Ctx().get(), req, &resp);
  }
  // ControllerExpandVolume to `bytes`, then NodeExpandVolume of the published target.
  void Expand(const csi::v1::Volume& vol, int64_t bytes) {
    csi::v1::ControllerExpandVolumeRequest req;
    req.set_volume_id(vol.volume_id());
    req.mutable_capacity_range()->set_required_bytes(bytes);
    *req.mutable_volume_capability() = Xfs();
    *req.mutable_secrets() = {secrets_.begin(), secrets_.end()};
    csi::v1::ControllerExpandVolumeResponse resp;
    ASSERT_TRUE(plugin_->controller().ControllerExpandVolume(Ctx().get(), req, &resp).ok());
    EXPECT_TRUE(resp.node_expansion_required());
    csi::v1::NodeExpandVolumeRequest nreq;
    nreq.set_volume_id(vol.volume_id());
    nreq.set_volume_path(target());
    nreq.set_staging_target_path(staging());
    *nreq.mutable_capacity_range() = req.capacity_range();
    *nreq.mutable_volume_capability() = Xfs();
    csi::v1::NodeExpandVolumeResponse nresp;
    grpc::Status st = plugin_->node().NodeExpandVolume(Ctx().get(), nreq, &nresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  grpc::Status Snapshot(const csi::v1::Volume& vol, const std::string& name,
                        csi::v1::CreateSnapshotResponse* resp) {
    csi::v1::CreateSnapshotRequest req;
    req.set_name(name);
    req.set_source_volume_id(vol.volume_id());
    *req.mutable_secrets() = {secrets_.begin(), secrets_.end()};
    return plugin_->controller().CreateSnapshot(Ctx().get(), req, resp);
  }
  grpc::Status DeleteSnapshot(const std::string& id) {
    csi::v1::DeleteSnapshotRequest req;
    req.set_snapshot_id(id);
    *req.mutable_secrets() = {secrets_.begin(), secrets_.end()};
    csi::v1::DeleteSnapshotResponse resp;
    return plugin_->controller().DeleteSnapshot(Ctx().get(), req, &resp);
  }
  std::vector<std::string> RbdLs() {
    librados::Rados rados;
    std::vector<std::string> names;
    if (rados.init2("client.admin", "ceph", 0) != 0 ||
        rados.conf_read_file(env_["RBDCSI_CEPH_CONF"].c_str()) != 0 || rados.connect() != 0) {
      return {"<cannot connect>"};
    }
    librados::IoCtx io;
    rados.ioctx_create(env_["RBDCSI_CEPH_POOL"].c_str(), io);
    std::vector<librbd::image_spec_t> images;
    librbd::RBD().list2(io, &images);
    for (const auto& i : images) names.push_back(i.name);
    return names;
  }

  std::string staging() const { return dir_ / "kubelet/plugins/rbd/globalmount"; }
  std::string target() const { return dir_ / "kubelet/pods/p1/volumes/vol"; }

  TempDir dir_{"ceph-e2e"};
  std::map<std::string, std::string> env_;
  std::map<std::string, std::string> secrets_;
  std::unique_ptr<Plugin> plugin_;
};

TEST_F(CephE2eTest, AVolumeLivesAndDiesOnTheClusterThroughTheFuseMapper) {
  const std::string name = absl::StrCat("e2e-", getpid());
  csi::v1::Volume vol;
  ASSERT_TRUE(Create(name, 512 << 20, &vol).ok());
  EXPECT_EQ(vol.volume_context().at("mapper"), "fuse");
  EXPECT_EQ(vol.volume_context().at("clusterID"), env_["RBDCSI_CEPH_CLUSTER_ID"]);

  ASSERT_TRUE(Stage(vol, staging()).ok()) << plugin_->Stderr();
  ASSERT_TRUE(Publish(vol, staging()).ok());
  std::ofstream(target() + "/data") << "kept across stages";
  sync();

  // In use: the controller names rbd-fuse's watch and refuses.
  grpc::Status busy = Delete(vol.volume_id());
  EXPECT_EQ(busy.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(busy.error_message(), HasSubstr("127.0.0.1:"));

  ASSERT_TRUE(Unpublish(vol).ok());
  ASSERT_TRUE(Unstage(vol, staging()).ok());
  ASSERT_TRUE(Stage(vol, staging()).ok());
  ASSERT_TRUE(Publish(vol, staging()).ok());
  EXPECT_EQ(ReadOrEmpty(target() + "/data"), "kept across stages");

  // Controller then node expansion: xfs grows online.
  struct statvfs before {
  }, after{};
  ASSERT_EQ(statvfs(target().c_str(), &before), 0);
  ASSERT_NO_FATAL_FAILURE(Expand(vol, 1 << 30));
  ASSERT_EQ(statvfs(target().c_str(), &after), 0);
  EXPECT_GT(after.f_blocks * after.f_frsize, before.f_blocks * before.f_frsize + (400u << 20));

  // Snapshot, then a volume from it: the data is there.
  csi::v1::CreateSnapshotResponse sresp;
  ASSERT_TRUE(Snapshot(vol, name + "-snap", &sresp).ok());
  EXPECT_TRUE(sresp.snapshot().ready_to_use());
  ASSERT_TRUE(Unpublish(vol).ok());
  ASSERT_TRUE(Unstage(vol, staging()).ok());  // xfs refuses two mounts with one UUID

  csi::v1::VolumeContentSource source;
  source.mutable_snapshot()->set_snapshot_id(sresp.snapshot().snapshot_id());
  csi::v1::Volume clone;
  ASSERT_TRUE(Create(name + "-clone", 1 << 30, &clone, &source).ok());
  EXPECT_EQ(clone.content_source().snapshot().snapshot_id(), sresp.snapshot().snapshot_id());
  ASSERT_TRUE(Stage(clone, staging()).ok()) << plugin_->Stderr();
  EXPECT_EQ(ReadOrEmpty(staging() + "/data"), "kept across stages");
  ASSERT_TRUE(Unstage(clone, staging()).ok());

  // Delete everything; nothing stays in the pool.
  ASSERT_TRUE(Delete(vol.volume_id()).ok());
  ASSERT_TRUE(Delete(clone.volume_id()).ok());
  ASSERT_TRUE(DeleteSnapshot(sresp.snapshot().snapshot_id()).ok());
  EXPECT_THAT(RbdLs(), IsEmpty());
  EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
  EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
}

TEST_F(CephE2eTest, AStoppedClusterAnswersUnavailableWithinTheBound) {
  // A cluster of its own: this test stops it.
  TempDir cluster_dir("ceph-stopped");
  const std::string cdir = cluster_dir / "c";
  ChildProcess start({RBDCSI_TEST_CLUSTER, "start", cdir, "--no-mgr"}, cluster_dir.path());
  ASSERT_EQ(start.Wait(std::chrono::seconds(60)), 0) << start.Stderr();
  std::map<std::string, std::string> env = EnvOf(cdir);
  plugin_->Stop();
  plugin_.reset();
  StartPlugin(env["RBDCSI_CEPH_CLUSTER_CONFIG"], "3");
  env_ = env;
  absl::StatusOr<std::string> key = ReadSmallFile(env["RBDCSI_CEPH_KEYFILE"]);
  secrets_["userKey"] = std::string(absl::StripAsciiWhitespace(key.value_or("")));
  csi::v1::Volume vol;
  ASSERT_TRUE(Create("before-the-stop", 16 << 20, &vol).ok());

  ChildProcess stop({RBDCSI_TEST_CLUSTER, "stop", cdir}, cluster_dir.path());
  ASSERT_EQ(stop.Wait(std::chrono::seconds(30)), 0);
  for (int i = 0; i < 2; ++i) {  // the cached session, then a new one
    const auto begin = std::chrono::steady_clock::now();
    csi::v1::Volume none;
    grpc::Status st = Create(absl::StrCat("after-the-stop-", i), 16 << 20, &none);
    const auto took = std::chrono::steady_clock::now() - begin;
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr("did not answer"));
    EXPECT_LT(took, std::chrono::seconds(10));
  }
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_EQ(Delete(vol.volume_id()).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(10));
}

TEST_F(CephE2eTest, ABadClusterConfigStopsServeNamingTheProblem) {
  std::ofstream(dir_ / "bad.json") << R"([{"clusterID": "c1", "monitors": []}])";
  ChildProcess serve(
      {RBDCSI_BINARY, "serve", "--endpoint", "unix://" + (dir_ / "bad.sock"), "--state-dir",
       dir_ / "bad-state", "--data-dir", dir_ / "bad-data", "--cluster-config", dir_ / "bad.json"},
      dir_.path());
  EXPECT_EQ(serve.Wait(std::chrono::seconds(20)), 2);
  EXPECT_THAT(serve.Stderr(), HasSubstr("bad.json"));
  EXPECT_THAT(serve.Stderr(), HasSubstr("monitors"));
}

}  // namespace
}  // namespace rbdcsi
