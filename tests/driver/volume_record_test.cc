#include "driver/volume_record.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

VolumeRecord Sample() {
  VolumeRecord r;
  r.volume_id = "pvc-123";
  r.mapper = "krbd";
  r.image = {"rbd", "csi-vol-1"};
  r.monitors = "10.0.0.1:6789";
  r.user = "kube";
  r.device = {"/dev/rbd3", 250, 0, r.image};
  r.staging_path = "/var/lib/kubelet/plugins/kubernetes.io/csi/rbd/globalmount";
  r.fs_type = "xfs";
  r.mount_flags = {"noatime", "discard"};
  r.read_only = true;
  r.step = StageStep::kUnmounted;
  r.published = {"/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pv/mount"};
  return r;
}

TEST(VolumeRecordTest, EncodeDecodeRoundTrip) {
  auto decoded = DecodeRecord(EncodeRecord(Sample()));
  ASSERT_THAT(decoded, IsOk());
  EXPECT_EQ(decoded->volume_id, "pvc-123");
  EXPECT_EQ(decoded->mapper, "krbd");
  EXPECT_EQ(decoded->image.ToString(), "rbd/csi-vol-1");
  EXPECT_EQ(decoded->device.path, "/dev/rbd3");
  EXPECT_EQ(decoded->device.major, 250u);
  EXPECT_EQ(decoded->staging_path, Sample().staging_path);
  EXPECT_EQ(decoded->fs_type, "xfs");
  EXPECT_EQ(decoded->mount_flags, Sample().mount_flags);
  EXPECT_TRUE(decoded->read_only);
  EXPECT_EQ(decoded->step, StageStep::kUnmounted);
  EXPECT_EQ(decoded->published, Sample().published);
  EXPECT_TRUE(decoded->publishes_known);
}

// Records written before publishes were tracked decode with publishes_known false.
TEST(VolumeRecordTest, RecordWithoutPublishesIsMarkedUnknown) {
  auto json = nlohmann::json::parse(EncodeRecord(Sample()));
  json.erase("published");
  auto decoded = DecodeRecord(json.dump());
  ASSERT_THAT(decoded, IsOk());
  EXPECT_FALSE(decoded->publishes_known);
  EXPECT_THAT(decoded->published, IsEmpty());
  EXPECT_EQ(EncodeRecord(*decoded).find("published"), std::string::npos);
}

TEST(VolumeRecordTest, DecodeRejectsDamage) {
  EXPECT_THAT(DecodeRecord("not json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON")));
  EXPECT_THAT(DecodeRecord("{\"version\": 1}"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("incomplete")));
  std::string text = EncodeRecord(Sample());
  text.replace(text.find("\"unmounted\""), 11, "\"exploded\"");
  EXPECT_THAT(DecodeRecord(text),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exploded")));
  EXPECT_THAT(DecodeRecord(EncodeRecord(Sample()).substr(0, 40)), Not(IsOk()));
}

TEST(RecordStoreTest, FileNamesStayInsideTheDirectory) {
  for (const std::string& id : std::vector<std::string>{
           "../../etc/passwd", "/abs", ".", "..", "a/b", std::string("a\0b", 3),
           std::string(5000, 'x'), std::string(300, '/')}) {
    const std::string name = RecordStore::FileNameFor(id);
    EXPECT_EQ(name.find('/'), std::string::npos) << name;
    EXPECT_NE(name[0], '.') << name;
    EXPECT_LE(name.size(), 255u) << name;
    EXPECT_EQ(name.find('\0'), std::string::npos);
  }
  EXPECT_EQ(RecordStore::FileNameFor("pvc-1"), "pvc-1.json");
  EXPECT_NE(RecordStore::FileNameFor("a/b"), RecordStore::FileNameFor("a%2Fb"));
  EXPECT_NE(RecordStore::FileNameFor(std::string(5000, 'x')),
            RecordStore::FileNameFor(std::string(5000, 'x') + "y"));
}

TEST(RecordStoreTest, SaveLoadDeleteAndListWithHostileIds) {
  TempDir dir("records");
  RecordStore store(dir.path());
  for (const std::string& id :
       std::vector<std::string>{"pvc-1", "../../escape", std::string(4000, 'z')}) {
    VolumeRecord r = Sample();
    r.volume_id = id;
    ASSERT_THAT(store.Save(r), IsOk());
    auto loaded = store.Load(id);
    ASSERT_THAT(loaded, IsOk());
    ASSERT_TRUE(loaded->has_value());
    EXPECT_EQ((*loaded)->volume_id, id);
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/../escape.json"));
  auto all = store.List();
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->size(), 3u);
  ASSERT_THAT(store.Delete("pvc-1"), IsOk());
  EXPECT_FALSE(store.Load("pvc-1").value().has_value());
  EXPECT_THAT(store.Delete("pvc-1"), IsOk());
  EXPECT_FALSE(store.Load("never").value().has_value());
}

TEST(RecordStoreTest, AnInterruptedWriteLeavesTheOldRecordIntact) {
  TempDir dir("records");
  RecordStore store(dir.path());
  VolumeRecord r = Sample();
  ASSERT_THAT(store.Save(r), IsOk());
  // A crash between writing the temporary file and renaming it leaves a torn temp file.
  const std::string torn = dir.path() + "/pvc-123.json.tmp.99999.0";
  std::ofstream(torn) << "{\"version\": 1, \"volu";
  auto loaded = store.Load("pvc-123");
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ((*loaded)->step, StageStep::kUnmounted);
  r.step = StageStep::kStaged;
  ASSERT_THAT(store.Save(r), IsOk());
  EXPECT_EQ(store.Load("pvc-123").value()->step, StageStep::kStaged);
  EXPECT_THAT(store.List(), IsOkAndHolds(::testing::SizeIs(1)));
  EXPECT_EQ(store.RemoveStaleTemporaries(), 1);
  EXPECT_FALSE(std::filesystem::exists(torn));
  EXPECT_TRUE(store.Load("pvc-123").value().has_value());
}

// Two writers used to share "<record>.tmp": one's rename took the other's half-written file.
TEST(RecordStoreTest, ConcurrentWritersNeverShareATemporaryFile) {
  TempDir dir("records");
  RecordStore a(dir.path()), b(dir.path());
  std::atomic<int> failures{0};
  auto writer = [&](RecordStore& store, StageStep step) {
    VolumeRecord r = Sample();
    r.step = step;
    for (int i = 0; i < 300; ++i) {
      if (!store.Save(r).ok()) ++failures;
    }
  };
  std::thread t1(writer, std::ref(a), StageStep::kMapped);
  std::thread t2(writer, std::ref(b), StageStep::kStaged);
  t1.join();
  t2.join();
  EXPECT_EQ(failures.load(), 0);
  auto loaded = a.Load("pvc-123");
  ASSERT_THAT(loaded, IsOk());
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(a.RemoveStaleTemporaries(), 0);
}

TEST(RecordStoreTest, AnOversizedRecordIsDataLossAndNeverReadIn) {
  TempDir dir("records");
  RecordStore store(dir.path());
  const std::string path = dir.path() + "/pvc-123.json";
  {
    std::ofstream f(path);
    f << EncodeRecord(Sample());
  }
  // Sparse: 1 GiB of zeros after the record; read in, it would cost 1 GiB of memory.
  std::filesystem::resize_file(path, 1ull << 30);
  EXPECT_THAT(store.Load("pvc-123"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("larger than 65536 bytes")));
  EXPECT_THAT(store.List(), IsOkAndHolds(::testing::IsEmpty()));
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST(RecordStoreTest, DamagedOrForeignRecordIsDataLossAndKept) {
  TempDir dir("records");
  RecordStore store(dir.path());
  std::ofstream(dir.path() + "/pvc-9.json") << "garbage";
  EXPECT_THAT(store.Load("pvc-9"), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("damaged")));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/pvc-9.json"));
  VolumeRecord r = Sample();
  std::ofstream(dir.path() + "/pvc-8.json") << EncodeRecord(r);  // says pvc-123 inside
  EXPECT_THAT(store.Load("pvc-8"), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("belongs to")));
}

// The serve process owns its state directory: List reads the files once, then answers from
// what this store saved and deleted, and a copy of the store shares that index.
TEST(RecordStoreTest, AnOwnedStoreListsFromMemoryAfterItsFirstRead) {
  TempDir dir("records");
  VolumeRecord a = Sample();
  a.volume_id = "pvc-a";
  ASSERT_THAT(RecordStore(dir.path()).Save(a), IsOk());  // there before the owner starts
  std::ofstream(dir.path() + "/pvc-9.json") << "garbage";
  RecordStore owned(dir.path(), RecordStore::Listing::kOwned);
  RecordStore copy = owned;
  auto ids = [](const absl::StatusOr<std::vector<VolumeRecord>>& list) {
    std::vector<std::string> out;
    for (const VolumeRecord& r : list.value()) out.push_back(r.volume_id);
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(ids(owned.List()), std::vector<std::string>{"pvc-a"});
  VolumeRecord b = Sample();
  b.volume_id = "pvc-b";
  ASSERT_THAT(copy.Save(b), IsOk());
  b.step = StageStep::kUnmounted;
  ASSERT_THAT(owned.Save(b), IsOk());
  ASSERT_THAT(owned.Delete("pvc-a"), IsOk());
  const absl::StatusOr<std::vector<VolumeRecord>> listed = owned.List();
  EXPECT_EQ(ids(listed), std::vector<std::string>{"pvc-b"});
  EXPECT_EQ(listed->front().step, StageStep::kUnmounted);
  // The files say the same as the memory.
  EXPECT_EQ(ids(RecordStore(dir.path()).List()), ids(listed));
  // A file that appears behind the owner's back is not listed (kDisk would list it).
  VolumeRecord c = Sample();
  c.volume_id = "pvc-c";
  ASSERT_THAT(RecordStore(dir.path()).Save(c), IsOk());
  EXPECT_EQ(ids(owned.List()), std::vector<std::string>{"pvc-b"});
  EXPECT_EQ(ids(RecordStore(dir.path()).List()), (std::vector<std::string>{"pvc-b", "pvc-c"}));
}

}  // namespace
}  // namespace rbdcsi
