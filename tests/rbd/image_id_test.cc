#include "rbd/image_id.h"

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

TEST(ImageIdTest, LoopIdsStayPoolSlashImage) {
  const ImageId id("", "rbd", "", "demo");
  EXPECT_EQ(EncodeVolumeId(id), "rbd/demo");
  EXPECT_EQ(*DecodeVolumeId("rbd/demo"), id);
  EXPECT_EQ(id.ToString(), "rbd/demo");
}

TEST(ImageIdTest, EveryFormRoundTripsExactly) {
  const ImageId ids[] = {
      {"", "rbd", "", "demo"},
      {"", "rbd", "ns1", "demo"},
      {"5f2c3a1e-0b6d-4f7a-9c1e-2d3b4a5c6d7e", "replicapool", "", "csi-vol-1"},
      {"c1", "p", "tenant_a", "v-x-0123456789abcdef"},
  };
  for (const ImageId& id : ids) {
    ASSERT_THAT(ValidateImageId(id), IsOk()) << id.ToString();
    const std::string encoded = EncodeVolumeId(id);
    EXPECT_LE(encoded.size(), kMaxIdLength);
    absl::StatusOr<ImageId> decoded = DecodeVolumeId(encoded);
    ASSERT_THAT(decoded.status(), IsOk()) << encoded;
    EXPECT_EQ(*decoded, id) << encoded;
    EXPECT_EQ(EncodeVolumeId(*decoded), encoded);
  }
}

TEST(ImageIdTest, JunkIsInvalidArgumentAndUnknownIsNotFound) {
  for (const std::string& junk : {std::string(), std::string(129, 'a'), std::string("rbd/a\nb"),
                                  std::string("rbd/\0x", 6), std::string("rbd/\xc3\xa9")}) {
    EXPECT_THAT(DecodeVolumeId(junk), StatusIs(absl::StatusCode::kInvalidArgument)) << junk;
  }
  // Printable but no image: CSI's "no such volume".
  for (const char* unknown :
       {"pvc-1", "a/b/c/d", "rbd//demo", ":rbd/demo", "c::rbd/demo", "rbd/.hidden", "rbd/", "/demo",
        "rbd/a b", "c1:rbd/x@snap", "some-vol-id"}) {
    EXPECT_THAT(DecodeVolumeId(unknown),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("names no image")))
        << unknown;
  }
}

TEST(ImageIdTest, NamesAreValidatedAndIdsBounded) {
  EXPECT_THAT(ValidateImageId({"", "rbd", "", "ok.name_1-2"}), IsOk());
  EXPECT_THAT(ValidateImageId({"", "rbd", "", "a/b"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("image")));
  EXPECT_THAT(ValidateImageId({"c:1", "rbd", "", "a"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cluster")));
  EXPECT_THAT(ValidateImageId({"", "rbd", "n@s", "a"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("namespace")));
  EXPECT_THAT(ValidateImageId({"", "", "", "a"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pool")));
  // 4 + 124 = 128 bytes fits; one more does not.
  EXPECT_THAT(ValidateImageId({"", "rbd", "", std::string(124, 'i')}), IsOk());
  EXPECT_THAT(ValidateImageId({"", "rbd", "", std::string(125, 'i')}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("128")));
}

TEST(ImageIdTest, KeysSeparateEveryPart) {
  // Parts that would run together without a separator, and ids differing in one part only.
  const ImageId ids[] = {
      {"", "ab", "", "c"},  {"", "a", "", "bc"},  {"", "a", "b", "c"},  {"a", "b", "", "c"},
      {"x", "a", "", "bc"}, {"", "a", "bc", "d"}, {"", "a", "b", "cd"},
  };
  std::set<std::string> keys;
  for (const ImageId& id : ids) keys.insert(id.Key());
  EXPECT_EQ(keys.size(), std::size(ids));
  EXPECT_EQ(ImageId("", "rbd", "", "d1").Key(), DecodeVolumeId("rbd/d1")->Key());
}

TEST(ImageIdTest, SnapshotIdsRoundTrip) {
  const SnapshotId snap{{"c1", "rbd", "ns", "vol"}, "snap-1"};
  ASSERT_THAT(ValidateSnapshotId(snap), IsOk());
  EXPECT_EQ(EncodeSnapshotId(snap), "c1:rbd/ns/vol@snap-1");
  EXPECT_EQ(*DecodeSnapshotId("c1:rbd/ns/vol@snap-1"), snap);
  EXPECT_EQ(*DecodeSnapshotId("rbd/vol@s"), (SnapshotId{{"", "rbd", "", "vol"}, "s"}));
  for (const char* unknown : {"rbd/vol", "rbd/vol@", "@s", "rbd/vol@s@t", "rbd/vol@a/b"}) {
    EXPECT_THAT(DecodeSnapshotId(unknown), StatusIs(absl::StatusCode::kNotFound)) << unknown;
  }
  EXPECT_THAT(DecodeSnapshotId(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateSnapshotId({{"", "rbd", "", std::string(120, 'v')}, "snapshot"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("128")));
}

TEST(ImageIdTest, MonitorListsGiveOneCanonicalClusterId) {
  const std::string id = ClusterIdFromMonitors("10.0.0.1:6789,10.0.0.2:6789");
  EXPECT_EQ(id, ClusterIdFromMonitors(" 10.0.0.2:6789 ,10.0.0.1:6789,10.0.0.1:6789,"));
  EXPECT_NE(id, ClusterIdFromMonitors("10.0.0.1:6789"));
  EXPECT_THAT(ValidateImageName(id, "cluster id"), IsOk());
  EXPECT_EQ(id.rfind("mon-", 0), 0u);
}

}  // namespace
}  // namespace rbdcsi
