#include "rbd/loop_images.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rbd/printers.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class LoopImageStoreTest : public ::testing::Test {
 protected:
  TempDir dir_{"loop-images"};
  LoopImageStore store_{dir_.path() + "/data"};
};

TEST(LoopImageStoreNameTest, AcceptsCephLikeNames) {
  EXPECT_THAT(LoopImageStore::ValidateName("pvc-0a1b.2_c"), IsOk());
  EXPECT_THAT(LoopImageStore::ValidateName(std::string(128, 'a')), IsOk());
}

TEST(LoopImageStoreNameTest, RejectsUnsafeNames) {
  for (const std::string& name :
       {std::string(), std::string(129, 'a'), std::string(".hidden"), std::string(".."),
        std::string("a/b"), std::string("a b"), std::string("ä"), std::string("x\n")}) {
    EXPECT_THAT(LoopImageStore::ValidateName(name),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")))
        << name;
  }
}

TEST_F(LoopImageStoreTest, PathOfIsBelowImagesDir) {
  EXPECT_EQ(store_.PathOf({"pool", "img"}), dir_.path() + "/data/images/pool/img.img");
  EXPECT_EQ(LoopImageStore(dir_.path() + "/data/").ImagesDir(), dir_.path() + "/data/images");
}

TEST_F(LoopImageStoreTest, CreateMakesSparseFileRoundedToSectors) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 1000), IsOk());
  struct stat st;
  ASSERT_EQ(stat(store_.PathOf({"pool", "img"}).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1024);
  EXPECT_EQ(st.st_blocks, 0);  // sparse
  EXPECT_THAT(store_.Size({"pool", "img"}), IsOk());
  EXPECT_EQ(*store_.Size({"pool", "img"}), 1024u);
  // No temporary file is left next to it.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_.path() + "/data/images/pool")) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(LoopImageStoreTest, CreateTwiceIsAlreadyExistsAndKeepsTheImage) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 4096), IsOk());
  EXPECT_THAT(store_.Create({"pool", "img"}, 8192),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("pool/img")));
  EXPECT_EQ(*store_.Size({"pool", "img"}), 4096u);
}

TEST_F(LoopImageStoreTest, CreateRejectsBadArguments) {
  EXPECT_THAT(store_.Create({"pool", "img"}, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("size")));
  EXPECT_THAT(store_.Create({"../x", "img"}, 512),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pool")));
  EXPECT_THAT(store_.Create({"pool", "a/b"}, 512),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("image")));
  for (uint64_t huge :
       {~uint64_t{0}, (uint64_t{1} << 63) - 1, (uint64_t{1} << 63) - 512, kMaxImageSize + 1}) {
    EXPECT_THAT(store_.Create({"pool", "img"}, huge),
                StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("largest")));
  }
  ASSERT_THAT(store_.Create({"pool", "img"}, 512), IsOk());
  EXPECT_THAT(store_.Resize({"pool", "img"}, (uint64_t{1} << 63) - 512),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("largest")));
}

TEST_F(LoopImageStoreTest, ResizeGrowsOnly) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 4096), IsOk());
  EXPECT_THAT(store_.Resize({"pool", "img"}, 4096), IsOk());
  EXPECT_THAT(store_.Resize({"pool", "img"}, 10000), IsOk());
  EXPECT_EQ(*store_.Size({"pool", "img"}), 10240u);
  EXPECT_THAT(store_.Resize({"pool", "img"}, 4096),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("shrink")));
  EXPECT_EQ(*store_.Size({"pool", "img"}), 10240u);
  EXPECT_THAT(store_.Resize({"pool", "missing"}, 4096),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("pool/missing")));
}

TEST_F(LoopImageStoreTest, DeleteIsIdempotent) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 4096), IsOk());
  EXPECT_THAT(store_.Delete({"pool", "img"}), IsOk());
  EXPECT_THAT(store_.Size({"pool", "img"}), StatusIs(absl::StatusCode::kNotFound, HasSubstr("")));
  EXPECT_THAT(store_.Delete({"pool", "img"}), IsOk());
  EXPECT_THAT(store_.Delete({"nopool", "img"}), IsOk());
}

TEST_F(LoopImageStoreTest, ListIsEmptyBeforeAnythingWasCreated) {
  absl::StatusOr<std::vector<ImageSpec>> list = store_.List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, IsEmpty());
}

TEST_F(LoopImageStoreTest, ListShowsImagesSortedAndIgnoresStrayFiles) {
  ASSERT_THAT(store_.Create({"b", "two"}, 512), IsOk());
  ASSERT_THAT(store_.Create({"a", "one"}, 512), IsOk());
  ASSERT_THAT(store_.Create({"b", "one"}, 512), IsOk());
  const std::string images = store_.ImagesDir();
  std::ofstream(images + "/b/.one.tmp123") << "x";  // an interrupted Create
  std::ofstream(images + "/b/notes.txt") << "x";
  std::ofstream(images + "/stray.img") << "x";
  std::filesystem::create_directories(images + "/.hidden");
  std::ofstream(images + "/.hidden/x.img") << "x";

  absl::StatusOr<std::vector<ImageSpec>> list = store_.List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list,
              ElementsAre(ImageSpec{"a", "one"}, ImageSpec{"b", "one"}, ImageSpec{"b", "two"}));
}

TEST(LoopImageStoreSpecOfPathTest, InvertsPathOf) {
  LoopImageStore store("/var/lib/rbdcsi");
  const std::string images = store.ImagesDir();
  EXPECT_EQ(LoopImageStore::SpecOfPath(images, store.PathOf({"p", "i"})), (ImageSpec{"p", "i"}));
  EXPECT_EQ(LoopImageStore::SpecOfPath(images, images + "2/p/i.img"), std::nullopt);
  EXPECT_EQ(LoopImageStore::SpecOfPath(images, images + "/p/i.raw"), std::nullopt);
  EXPECT_EQ(LoopImageStore::SpecOfPath(images, images + "/p/q/i.img"), std::nullopt);
  EXPECT_EQ(LoopImageStore::SpecOfPath(images, images + "/p/.i.img"), std::nullopt);
  EXPECT_EQ(LoopImageStore::SpecOfPath(images, "/srv/other.img"), std::nullopt);
}

}  // namespace
}  // namespace rbdcsi
