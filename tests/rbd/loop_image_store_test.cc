// LoopImageStore through the ImageStore interface, as the controller sees it.
#include <fstream>
#include <memory>

#include "gtest/gtest.h"
#include "rbd/loop_images.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Reports the devices it was told about.
class ListedDevices : public Mapper {
 public:
  std::string_view Name() const override { return "listed"; }
  MapperTraits Traits() const override { return {}; }
  absl::StatusOr<MappedDevice> Map(const MapOptions&) override {
    return absl::UnimplementedError("not here");
  }
  absl::Status Unmap(const MappedDevice&) override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<MappedDevice>> List() override { return devices; }
  absl::Status RefreshCapacity(const MappedDevice&) override { return absl::OkStatus(); }

  std::vector<MappedDevice> devices;
};

class LoopImageStoreAsImageStoreTest : public ::testing::Test {
 protected:
  TempDir dir_{"loop-image-store"};
  ListedDevices mapped_;
  LoopImageStore loop_{dir_.path() + "/data", &mapped_};
  ImageStore& store_ = loop_;
  const ImageId id_{"", "rbd", "", "vol"};
};

TEST_F(LoopImageStoreAsImageStoreTest, CreateInfoListResize) {
  absl::StatusOr<ImageInfo> created = store_.Create(id_, 1000, {});
  ASSERT_THAT(created.status(), IsOk());
  EXPECT_EQ(created->id, id_);
  EXPECT_EQ(created->size_bytes, 1024u);
  EXPECT_THAT(store_.Create(id_, 1000, {}).status(), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_THAT(store_.Resize(id_, 4096), IsOk());
  EXPECT_EQ(store_.Info(id_)->size_bytes, 4096u);
  EXPECT_THAT(store_.Resize(id_, 512), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(store_.Create({"", "other", "", "a"}, 512, {}).status(), IsOk());
  absl::StatusOr<std::vector<ImageInfo>> all = store_.List("");
  ASSERT_THAT(all.status(), IsOk());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(EncodeVolumeId((*all)[0].id), "other/a");
  EXPECT_EQ(store_.List("rbd")->size(), 1u);
  EXPECT_THAT(*store_.List("none"), IsEmpty());
  EXPECT_THAT(store_.Info({"", "rbd", "", "missing"}).status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_GT(*store_.Capacity("rbd"), 0u);
}

TEST_F(LoopImageStoreAsImageStoreTest, OnlyImagesWithoutClusterOrNamespace) {
  EXPECT_THAT(store_.Create({"c1", "rbd", "", "vol"}, 512, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cluster")));
  EXPECT_THAT(store_.Create({"", "rbd", "ns", "vol"}, 512, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("namespace")));
}

TEST_F(LoopImageStoreAsImageStoreTest, DeleteRefusesWhileMappedAndNamesTheDevice) {
  ASSERT_THAT(store_.Create(id_, 512, {}).status(), IsOk());
  mapped_.devices = {MappedDevice{"/dev/loop7", 7, 7, {"rbd", "vol"}},
                     MappedDevice{"/dev/loop8", 7, 8, {"rbd", "another"}}};
  EXPECT_THAT(*store_.Watchers(id_), ElementsAre("/dev/loop7"));
  EXPECT_THAT(store_.Delete(id_), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("in use: mapped at /dev/loop7")));
  mapped_.devices.clear();
  EXPECT_THAT(*store_.Watchers(id_), IsEmpty());
  EXPECT_THAT(store_.Delete(id_), IsOk());
  EXPECT_THAT(store_.Delete(id_), IsOk());  // missing is OK
  EXPECT_THAT(store_.Watchers(id_).status(), StatusIs(absl::StatusCode::kNotFound));
}

void WriteAt(const std::string& path, const std::string& data) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f << data;
}
std::string ReadAt(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  std::string out(n, '\0');
  f.read(out.data(), static_cast<std::streamsize>(n));
  return out;
}

TEST_F(LoopImageStoreAsImageStoreTest, SnapshotsAreCopiesThatOutliveTheirImage) {
  ASSERT_THAT(store_.Create(id_, 1 << 20, {}).status(), IsOk());
  WriteAt(loop_.PathOf(id_.Spec()), "first");
  absl::StatusOr<SnapshotInfo> snap = store_.CreateSnapshot(id_, "s1");
  ASSERT_THAT(snap, IsOk());
  EXPECT_EQ(snap->size_bytes, 1u << 20);
  EXPECT_TRUE(snap->ready_to_use);
  EXPECT_EQ(snap->source, id_);
  EXPECT_THAT(store_.CreateSnapshot(id_, "s1"), IsOk());  // idempotent
  WriteAt(loop_.PathOf(id_.Spec()), "later");

  const ImageId other{"", "rbd", "", "other"};
  ASSERT_THAT(store_.Create(other, 512, {}).status(), IsOk());
  EXPECT_THAT(store_.CreateSnapshot(other, "s1").status(),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("vol")));
  EXPECT_THAT(store_.CreateSnapshot({"", "rbd", "", "missing"}, "s2").status(),
              StatusIs(absl::StatusCode::kNotFound));

  const ImageId from_snap{"", "rbd", "", "from-snap"}, copy{"", "rbd", "", "copy"};
  absl::StatusOr<ImageInfo> clone = store_.CloneFromSnapshot(snap->id, from_snap, 2 << 20);
  ASSERT_THAT(clone, IsOk());
  EXPECT_EQ(clone->size_bytes, 2u << 20);
  EXPECT_EQ(ReadAt(loop_.PathOf(from_snap.Spec()), 5), "first");
  EXPECT_THAT(store_.CloneFromSnapshot(snap->id, from_snap, 0).status(),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(store_.CloneFromSnapshot(snap->id, {"", "rbd", "", "small"}, 512).status(),
              StatusIs(absl::StatusCode::kOutOfRange));
  ASSERT_THAT(store_.CloneFromImage(id_, copy, 0), IsOk());
  EXPECT_EQ(ReadAt(loop_.PathOf(copy.Spec()), 5), "later");

  ASSERT_THAT(store_.Delete(id_), IsOk());
  absl::StatusOr<std::vector<SnapshotInfo>> listed = store_.ListSnapshots(std::nullopt);
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().id, snap->id);
  EXPECT_EQ(store_.ListSnapshots(id_)->size(), 1u);
  EXPECT_THAT(*store_.ListSnapshots(other), IsEmpty());
  EXPECT_THAT(store_.DeleteSnapshot(snap->id), IsOk());
  EXPECT_THAT(store_.DeleteSnapshot(snap->id), IsOk());
  EXPECT_THAT(*store_.ListSnapshots(std::nullopt), IsEmpty());
  // Snapshot files never show up as images.
  absl::StatusOr<std::vector<ImageInfo>> images = store_.List("");
  ASSERT_THAT(images, IsOk());
  for (const ImageInfo& i : *images) EXPECT_NE(i.id.image, "vol");
}

TEST(SingleStoreProviderTest, ServesOneClusterOnly) {
  TempDir dir("provider");
  LoopImageStore loop(dir.path());
  SingleStoreProvider provider(&loop);
  EXPECT_EQ(*provider.For("", Credentials{}), &loop);
  EXPECT_THAT(provider.For("c1", Credentials{"admin", "k3y"}).status(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::Not(HasSubstr("k3y"))));
}

}  // namespace
}  // namespace rbdcsi
