// CephImageStore against the live test cluster: every test makes and removes its own images.
#include "ceph/ceph_image_store.h"

#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "ceph/ceph_store_provider.h"
#include "gtest/gtest.h"
#include "tests/ceph/cluster_bootstrap.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::map<std::string, std::string> ClusterEnv() {
  std::map<std::string, std::string> env;
  absl::StatusOr<std::vector<std::string>> lines =
      ReadEnvFile(std::string(RBDCSI_CEPH_TEST_DIR) + "/env");
  if (!lines.ok()) return env;
  for (const std::string& line : *lines) {
    env[line.substr(0, line.find('='))] = line.substr(line.find('=') + 1);
  }
  return env;
}

class CephImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(env_["RBDCSI_CEPH_MON"].empty()) << "no test cluster in " << RBDCSI_CEPH_TEST_DIR;
    cluster_.cluster_id = env_["RBDCSI_CEPH_CLUSTER_ID"];
    cluster_.monitors = {env_["RBDCSI_CEPH_MON"]};
    absl::StatusOr<std::string> key = ReadSmallFile(env_["RBDCSI_CEPH_KEYFILE"]);
    ASSERT_THAT(key, IsOk());
    creds_ = {env_["RBDCSI_CEPH_USER"], std::string(absl::StripAsciiWhitespace(*key))};
    store_ = std::make_unique<CephImageStore>(cluster_, creds_, CephClientOptions{});
    ASSERT_THAT(store_->Connect(), IsOk());
  }

  // A name of this test's own, so that tests never see each other's images.
  ImageId Id(const std::string& suffix) const {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return ImageId(cluster_.cluster_id, env_.at("RBDCSI_CEPH_POOL"), "",
                   absl::StrCat(info->name(), "-", getpid(), "-", suffix));
  }

  // Writes `data` at offset 0 / reads it back through librbd, as a mapped device would.
  void Write(const ImageId& id, const std::string& data) {
    librados::IoCtx io = Io();
    librbd::Image image;
    ASSERT_EQ(librbd::RBD().open(io, image, id.image.c_str()), 0);
    librados::bufferlist bl;
    bl.append(data);
    ASSERT_EQ(image.write(0, data.size(), bl), static_cast<ssize_t>(data.size()));
  }
  std::string Read(const ImageId& id, size_t n) {
    librados::IoCtx io = Io();
    librbd::Image image;
    if (librbd::RBD().open_read_only(io, image, id.image.c_str(), nullptr) != 0) return "";
    librados::bufferlist bl;
    image.read(0, n, bl);
    return bl.to_str();
  }
  librados::IoCtx Io() {
    if (!admin_) {
      admin_ = std::make_unique<librados::Rados>();
      admin_->init2("client.admin", "ceph", 0);
      admin_->conf_read_file(env_["RBDCSI_CEPH_CONF"].c_str());
      EXPECT_EQ(admin_->connect(), 0);
    }
    librados::IoCtx io;
    admin_->ioctx_create(env_["RBDCSI_CEPH_POOL"].c_str(), io);
    return io;
  }
  std::vector<std::string> TrashNames() {
    librados::IoCtx io = Io();
    std::vector<librbd::trash_image_info_t> entries;
    librbd::RBD().trash_list(io, entries);
    std::vector<std::string> names;
    for (const auto& e : entries) names.push_back(e.name);
    return names;
  }

  std::map<std::string, std::string> env_ = ClusterEnv();
  ClusterConfig cluster_;
  Credentials creds_;
  std::unique_ptr<CephImageStore> store_;
  std::unique_ptr<librados::Rados> admin_;
};

TEST_F(CephImageStoreTest, CreateResizeListDelete) {
  const ImageId id = Id("a");
  absl::StatusOr<ImageInfo> info = store_->Create(id, 10'000'001, {});
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->size_bytes, 10'000'384u);  // rounded up to 512
  EXPECT_EQ(info->id, id);
  EXPECT_THAT(store_->Create(id, 1 << 20, {}), StatusIs(absl::StatusCode::kAlreadyExists, _));
  EXPECT_THAT(store_->Resize(id, 1 << 20), StatusIs(absl::StatusCode::kInvalidArgument, _));
  ASSERT_THAT(store_->Resize(id, 32 << 20), IsOk());
  EXPECT_EQ(store_->Info(id)->size_bytes, 32u << 20);
  absl::StatusOr<std::vector<ImageInfo>> all = store_->List(id.pool);
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(std::count_if(all->begin(), all->end(), [&](const ImageInfo& i) { return i.id == id; }),
            1);
  ASSERT_THAT(store_->Delete(id), IsOk());
  EXPECT_THAT(store_->Info(id), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(store_->Delete(id), IsOk());
  EXPECT_THAT(store_->Resize(id, 64 << 20), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(store_->Create(id, 1 << 20, {{"no-such-feature"}, ""}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no-such-feature")));
}

TEST_F(CephImageStoreTest, ListCoversTheDefaultAndTheConfiguredNamespace) {
  const std::string ns = absl::StrCat("ns-", getpid());
  {
    librados::IoCtx io = Io();
    ASSERT_EQ(librbd::RBD().namespace_create(io, ns.c_str()), 0);
  }
  ClusterConfig with_ns = cluster_;
  with_ns.rados_namespace = ns;
  CephImageStore store(with_ns, creds_, CephClientOptions{});
  const ImageId plain = Id("plain");
  ImageId spaced = Id("spaced");
  spaced.rados_namespace = ns;
  ASSERT_THAT(store.Create(plain, 1 << 20, {}), IsOk());
  ASSERT_THAT(store.Create(spaced, 1 << 20, {}), IsOk());
  absl::StatusOr<std::vector<ImageInfo>> all = store.List(plain.pool);
  ASSERT_THAT(all, IsOk());
  int seen = 0;
  for (const ImageInfo& i : *all) seen += (i.id == plain) + (i.id == spaced);
  EXPECT_EQ(seen, 2);
  EXPECT_THAT(store.Delete(plain), IsOk());
  EXPECT_THAT(store.Delete(spaced), IsOk());
  librados::IoCtx io = Io();
  EXPECT_EQ(librbd::RBD().namespace_remove(io, ns.c_str()), 0);
}

TEST_F(CephImageStoreTest, DeleteRefusesAWatchedImageNamingTheWatcher) {
  const ImageId id = Id("w");
  ASSERT_THAT(store_->Create(id, 4 << 20, {}), IsOk());
  {
    librados::IoCtx io = Io();
    librbd::Image open;  // a read-write open holds a watch, as rbd-fuse or krbd do
    ASSERT_EQ(librbd::RBD().open(io, open, id.image.c_str()), 0);
    absl::StatusOr<std::vector<std::string>> watchers = store_->Watchers(id);
    ASSERT_THAT(watchers, IsOk());
    ASSERT_EQ(watchers->size(), 1u);
    EXPECT_THAT(store_->Delete(id),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr((*watchers)[0])));
    EXPECT_THAT((*watchers)[0], HasSubstr("127.0.0.1:"));
  }
  EXPECT_THAT(store_->Delete(id), IsOk());
  EXPECT_THAT(store_->Info(id), StatusIs(absl::StatusCode::kNotFound, _));
}

TEST_F(CephImageStoreTest, SnapshotsAndClonesOutliveTheirSource) {
  const ImageId src = Id("src"), from_snap = Id("from-snap"), from_vol = Id("from-vol");
  ASSERT_THAT(store_->Create(src, 8 << 20, {}), IsOk());
  Write(src, "first");
  absl::StatusOr<SnapshotInfo> snap = store_->CreateSnapshot(src, "s1");
  ASSERT_THAT(snap, IsOk());
  EXPECT_TRUE(snap->ready_to_use);
  EXPECT_EQ(snap->size_bytes, 8u << 20);
  EXPECT_EQ(snap->source, src);
  EXPECT_THAT(store_->CreateSnapshot(src, "s1"), IsOk());  // idempotent
  EXPECT_THAT(store_->CreateSnapshot(from_snap, "s1"), StatusIs(absl::StatusCode::kNotFound, _));
  Write(src, "later");

  absl::StatusOr<ImageInfo> clone = store_->CloneFromSnapshot(snap->id, from_snap, 16 << 20);
  ASSERT_THAT(clone, IsOk());
  EXPECT_EQ(clone->size_bytes, 16u << 20);
  ASSERT_TRUE(clone->source_snapshot.has_value());
  EXPECT_EQ(*clone->source_snapshot, snap->id);
  EXPECT_EQ(Read(from_snap, 5), "first");
  EXPECT_THAT(store_->CloneFromSnapshot(snap->id, Id("small"), 1 << 20),
              StatusIs(absl::StatusCode::kOutOfRange, _));

  absl::StatusOr<ImageInfo> copy = store_->CloneFromImage(src, from_vol, 0);
  ASSERT_THAT(copy, IsOk());
  ASSERT_TRUE(copy->source_image.has_value());
  EXPECT_EQ(*copy->source_image, src);
  EXPECT_EQ(Read(from_vol, 5), "later");
  // The clone's helper snapshot is not a CSI snapshot.
  EXPECT_EQ(store_->ListSnapshots(src)->size(), 1u);

  // Another image cannot take the name of an existing snapshot.
  EXPECT_THAT(store_->CreateSnapshot(from_vol, "s1"),
              StatusIs(absl::StatusCode::kAlreadyExists, _));

  // The source goes out of the CO's view; its snapshot and both clones stay usable.
  ASSERT_THAT(store_->Delete(src), IsOk());
  EXPECT_THAT(store_->Info(src), StatusIs(absl::StatusCode::kNotFound, _));
  absl::StatusOr<std::vector<ImageInfo>> listed = store_->List(src.pool);
  ASSERT_THAT(listed, IsOk());
  for (const ImageInfo& i : *listed) EXPECT_NE(i.id, src);
  absl::StatusOr<std::vector<SnapshotInfo>> snaps = store_->ListSnapshots(src);
  ASSERT_THAT(snaps, IsOk());
  ASSERT_EQ(snaps->size(), 1u);
  EXPECT_EQ(snaps->front().id, snap->id);
  const ImageId late = Id("late");
  ASSERT_THAT(store_->CloneFromSnapshot(snap->id, late, 0), IsOk());
  EXPECT_EQ(Read(late, 5), "first");
  EXPECT_EQ(Read(from_vol, 5), "later");

  // Once nothing depends on it any more, the deleted source leaves the trash too.
  for (const ImageId& id : {from_snap, from_vol, late}) ASSERT_THAT(store_->Delete(id), IsOk());
  ASSERT_THAT(store_->DeleteSnapshot(snap->id), IsOk());
  EXPECT_THAT(store_->DeleteSnapshot(snap->id), IsOk());
  EXPECT_THAT(store_->ListSnapshots(src), IsOk());
  EXPECT_THAT(store_->ListSnapshots(src)->size(), 0u);
  for (const std::string& name : TrashNames()) EXPECT_NE(name, src.image);
}

TEST_F(CephImageStoreTest, CapacityComesFromThePoolStatistics) {
  absl::StatusOr<uint64_t> avail;
  // The mgr reports pool statistics a few seconds after the cluster started.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  do {
    avail = store_->Capacity(env_["RBDCSI_CEPH_POOL"]);
    ASSERT_THAT(avail, IsOk());
    if (*avail > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_GT(*avail, 1ULL << 30);  // most of the OSD's 4 GiB
  EXPECT_LE(*avail, 4ULL << 30);
  EXPECT_THAT(store_->Capacity("no-such-pool"), StatusIs(absl::StatusCode::kNotFound, _));
}

TEST_F(CephImageStoreTest, RejectedCredentialsFailWithinTheBoundWithoutTheKey) {
  Credentials wrong{creds_.user, NewCephxKey()};
  CephImageStore store(cluster_, wrong, CephClientOptions{std::chrono::seconds(2)});
  const auto start = std::chrono::steady_clock::now();
  absl::Status st = store.Connect();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // cephx does not say "wrong key": the client only sees no answer.
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("key was rejected")));
  EXPECT_THAT(st.message(), Not(HasSubstr(wrong.key)));
  EXPECT_THAT(st.message(), Not(HasSubstr(creds_.key)));
}

TEST_F(CephImageStoreTest, AClusterThatDoesNotAnswerIsUnavailableWithinTheBound) {
  ClusterConfig nowhere = cluster_;
  nowhere.monitors = {"127.0.0.1:9"};  // nothing listens on the discard port here
  CephImageStore store(nowhere, creds_, CephClientOptions{std::chrono::seconds(2)});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(store.Info(Id("x")), StatusIs(absl::StatusCode::kUnavailable, Not(IsEmpty())));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(CephImageStoreTest, ProviderUsesTheConfiguredControllerCredentials) {
  absl::StatusOr<std::unique_ptr<ClusterConfigSource>> config =
      ClusterConfigSource::Load(env_["RBDCSI_CEPH_CLUSTER_CONFIG"]);
  ASSERT_THAT(config, IsOk());
  CephStoreProvider provider(config->get(), nullptr, CephClientOptions{});
  absl::StatusOr<ImageStore*> store = provider.For(cluster_.cluster_id, {});
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT((*store)->List(env_["RBDCSI_CEPH_POOL"]), IsOk());
  EXPECT_EQ(*provider.For(cluster_.cluster_id, creds_), *store);  // one store per user
  EXPECT_THAT(provider.For("elsewhere", creds_), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(provider.For("", creds_), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(provider.For(cluster_.cluster_id, {creds_.user, ""}),
              StatusIs(absl::StatusCode::kInvalidArgument, _));
}

}  // namespace
}  // namespace rbdcsi
