// `rbdcsi gc`'s decisions: every refusal with its reason, the orphan it unmaps, its memory of
// first sightings and its table. The real-kernel version is gc_integration_test.
#include "cmd/gc.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

GcDevice Loop(const std::string& path, unsigned minor, const std::string& image) {
  GcDevice d;
  d.mapper = "loop";
  d.device = MappedDevice{path, 7, minor, ImageSpec("rbd", image)};
  d.ours = true;
  d.unrecorded_for = 3600;
  return d;
}

VolumeRecord Record(const std::string& id, const std::string& image, const std::string& device,
                    unsigned minor, StageStep step) {
  VolumeRecord r;
  r.volume_id = id;
  r.mapper = "loop";
  r.image = ImageSpec("rbd", image);
  r.device = MappedDevice{device, 7, minor, r.image};
  r.step = step;
  return r;
}

GcDecision DecideOne(const GcDevice& d, const std::vector<VolumeRecord>& records = {},
                     int64_t grace = 600) {
  return DecideGc({d}, records, grace).at(0);
}

TEST(GcTest, AFreeOrphanOlderThanTheGraceIsUnmapped) {
  GcDecision d = DecideOne(Loop("/dev/loop3", 3, "orphan"));
  EXPECT_EQ(d.verdict, GcVerdict::kUnmap);
  EXPECT_THAT(d.reason, StartsWith("orphan: no record, no holder"));
}

TEST(GcTest, ADeviceItsMapperCannotClaimIsNeverUnmapped) {
  GcDevice rbd = Loop("/dev/rbd0", 0, "img");
  rbd.mapper = "krbd";
  rbd.ours = false;
  GcDecision d = DecideOne(rbd);
  EXPECT_EQ(d.verdict, GcVerdict::kKeep);
  EXPECT_THAT(d.reason, StartsWith("not-ours: the krbd mapper cannot tell its devices"));
}

TEST(GcTest, ARecordOfTheDeviceOrOfItsImageKeepsIt) {
  const GcDevice dev = Loop("/dev/loop3", 3, "img");
  GcDecision by_device =
      DecideOne(dev, {Record("rbd/img", "img", "/dev/loop3", 3, StageStep::kStaged)});
  EXPECT_EQ(by_device.verdict, GcVerdict::kKeep);
  EXPECT_THAT(by_device.reason, StartsWith("recorded: the record of volume rbd/img (step staged)"));
  // An unfinished stage (no device recorded yet), or a second mapping of a recorded image:
  // unstage of that volume removes every mapping of the image.
  GcDecision by_image = DecideOne(dev, {Record("rbd/img", "img", "", 0, StageStep::kMapping)});
  EXPECT_EQ(by_image.verdict, GcVerdict::kKeep);
  EXPECT_THAT(by_image.reason, HasSubstr("(step mapping)"));
  // Another mapper's record of the same name does not count; nor does another image's.
  VolumeRecord fuse = Record("c:rbd/img", "img", "/dev/loop9", 9, StageStep::kStaged);
  fuse.mapper = "fuse";
  EXPECT_EQ(
      DecideOne(dev, {fuse, Record("rbd/x", "x", "/dev/loop4", 4, StageStep::kStaged)}).verdict,
      GcVerdict::kUnmap);
}

TEST(GcTest, AnyHolderKeepsIt) {
  GcDevice dev = Loop("/dev/loop3", 3, "img");
  dev.holders = {"mounted at /mnt in mount namespace 4026532871 of pid 21839 (sleep)",
                 "open by pid 4242 (cat)"};
  GcDecision d = DecideOne(dev);
  EXPECT_EQ(d.verdict, GcVerdict::kKeep);
  EXPECT_EQ(d.reason,
            "held: mounted at /mnt in mount namespace 4026532871 of pid 21839 (sleep); open by "
            "pid 4242 (cat)");
}

TEST(GcTest, AFailedScanKeepsIt) {
  GcDevice dev = Loop("/dev/loop3", 3, "img");
  dev.scan = absl::InternalError("cannot list /proc");
  EXPECT_EQ(DecideOne(dev).verdict, GcVerdict::kKeep);
  EXPECT_THAT(DecideOne(dev).reason, StartsWith("unscanned: cannot list /proc"));
}

TEST(GcTest, AnOrphanYoungerThanTheGraceIsKept) {
  GcDevice dev = Loop("/dev/loop3", 3, "img");
  dev.unrecorded_for = 599;
  EXPECT_EQ(DecideOne(dev, {}, 600).verdict, GcVerdict::kKeep);
  EXPECT_EQ(DecideOne(dev, {}, 600).reason,
            "young: without a record for 599 s of the 600 s grace period");
  dev.unrecorded_for = 0;
  EXPECT_EQ(DecideOne(dev, {}, 0).verdict, GcVerdict::kUnmap);  // --grace 0: at once
}

TEST(GcTest, TheMemoryOfFirstSightingsSurvivesARoundTripAndJunk) {
  std::map<std::string, int64_t> seen = {{GcSeenKey(Loop("/dev/loop3", 3, "img")), 1700000000}};
  EXPECT_EQ(ParseGcSeen(FormatGcSeen(seen)), seen);
  EXPECT_EQ(GcSeenKey(Loop("/dev/loop3", 3, "img")), "loop /dev/loop3 7:3 rbd/img");
  // A device number reused for another image is another device.
  EXPECT_NE(GcSeenKey(Loop("/dev/loop3", 3, "other")), GcSeenKey(Loop("/dev/loop3", 3, "img")));
  EXPECT_TRUE(ParseGcSeen("{not json").empty());
  EXPECT_TRUE(ParseGcSeen("[1,2]").empty());
  EXPECT_EQ(ParseGcSeen(R"({"a": 5, "b": "x"})"), (std::map<std::string, int64_t>{{"a", 5}}));
}

TEST(GcTest, TheDryRunTablePrintsEveryDecisionWithItsReason) {
  GcDevice young = Loop("/dev/loop4", 4, "young");
  young.unrecorded_for = 10;
  std::vector<GcDecision> decisions = DecideGc({Loop("/dev/loop3", 3, "orphan"), young}, {}, 600);
  EXPECT_EQ(FormatGcTable(decisions, {"", ""}, /*dry_run=*/true),
            "DEVICE\tMAPPER\tIMAGE\tDECISION\tREASON\n"
            "/dev/loop3\tloop\trbd/orphan\twould-unmap\torphan: no record, no holder, without a "
            "record for 3600 s (grace 600 s)\n"
            "/dev/loop4\tloop\trbd/young\tkeep\tyoung: without a record for 10 s of the 600 s "
            "grace period\n"
            "2 device(s); 1 would be unmapped\n");
  EXPECT_THAT(FormatGcTable(decisions, {"held by pid 7", ""}, /*dry_run=*/false),
              HasSubstr("unmap-failed (held by pid 7)"));
  EXPECT_THAT(FormatGcTable(decisions, {"", ""}, false), HasSubstr("1 unmapped (1 done)"));
}

}  // namespace
}  // namespace rbdcsi
