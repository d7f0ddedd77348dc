#include "driver/controller.h"

#include <limits>

#include "gtest/gtest.h"
#include "mounter/testing/fake_mounter.h"
#include "rbd/loop_images.h"
#include "rbd/testing/fake_mapper.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::_;
using ::testing::HasSubstr;

class ControllerOpsTest : public ::testing::Test {
 protected:
  ControllerOpsTest()
      : mounter_(&log_, &script_),
        mapper_("loop", &log_, &script_, mounter_.DeviceAdder()),
        images_(dir_.path(), &mapper_),
        stores_(&images_),
        ops_(Config(), &stores_, &locks_) {}

  static ControllerConfig Config() {
    ControllerConfig config;
    config.mappers = {"loop"};
    return config;
  }

  static csi::v1::CreateVolumeRequest Create(const std::string& name, int64_t required,
                                             int64_t limit = 0) {
    csi::v1::CreateVolumeRequest req;
    req.set_name(name);
    req.mutable_capacity_range()->set_required_bytes(required);
    req.mutable_capacity_range()->set_limit_bytes(limit);
    auto* cap = req.add_volume_capabilities();
    cap->mutable_mount();
    cap->mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    return req;
  }

  TempDir dir_{"controller"};
  ActionLog log_;
  FailureScript script_;
  FakeMounter mounter_;
  FakeMapper mapper_;
  LoopImageStore images_;
  SingleStoreProvider stores_;
  VolumeLocks locks_;
  ControllerOps ops_;
};

TEST_F(ControllerOpsTest, CreateIsIdempotentByNameAndHonoursTheRange) {
  csi::v1::CreateVolumeResponse first, again;
  ASSERT_THAT(ops_.CreateVolume(Create("pvc-a", 10 << 20), &first), IsOk());
  EXPECT_EQ(first.volume().volume_id(), "rbd/pvc-a");
  EXPECT_EQ(first.volume().capacity_bytes(), 10 << 20);
  EXPECT_EQ(first.volume().volume_context().at("mapper"), "loop");
  EXPECT_EQ(*images_.Size({"rbd", "pvc-a"}), 10u << 20);
  ASSERT_THAT(ops_.CreateVolume(Create("pvc-a", 10 << 20), &again), IsOk());
  EXPECT_EQ(again.volume().volume_id(), first.volume().volume_id());
  csi::v1::CreateVolumeResponse bigger;
  EXPECT_THAT(ops_.CreateVolume(Create("pvc-a", 20 << 20), &bigger),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("pvc-a")));
  csi::v1::CreateVolumeResponse odd;
  ASSERT_THAT(ops_.CreateVolume(Create("pvc-odd", 1000), &odd), IsOk());
  EXPECT_EQ(odd.volume().capacity_bytes(), 1024);  // rounded up to whole sectors
  EXPECT_THAT(ops_.CreateVolume(Create("pvc-b", 10 << 20, 1 << 20), &odd),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("exceeds limit_bytes")));
}

TEST_F(ControllerOpsTest, NamesThatAreNotImageNamesGetStableSafeImages) {
  const std::string weird = "../../etc/passwd with spaces";
  EXPECT_EQ(ControllerOps::ImageNameFor(weird), ControllerOps::ImageNameFor(weird));
  EXPECT_THAT(LoopImageStore::ValidateName(ControllerOps::ImageNameFor(weird)), IsOk());
  EXPECT_NE(ControllerOps::ImageNameFor(weird), ControllerOps::ImageNameFor(weird + "x"));
  csi::v1::CreateVolumeResponse resp;
  ASSERT_THAT(ops_.CreateVolume(Create(weird, 1 << 20), &resp), IsOk());
  EXPECT_THAT(resp.volume().volume_id(), HasSubstr("rbd/v-etcpasswd"));
}

TEST_F(ControllerOpsTest, DeleteIsIdempotentAndRefusesAMappedVolume) {
  csi::v1::CreateVolumeResponse created;
  ASSERT_THAT(ops_.CreateVolume(Create("pvc-a", 1 << 20), &created), IsOk());
  mapper_.AddImage("rbd/pvc-a");
  MapOptions map;
  map.image = {"rbd", "pvc-a"};
  ASSERT_THAT(mapper_.Map(map), IsOk());
  csi::v1::DeleteVolumeRequest del;
  del.set_volume_id("rbd/pvc-a");
  EXPECT_THAT(ops_.DeleteVolume(del),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
  mapper_.mapped().clear();
  EXPECT_THAT(ops_.DeleteVolume(del), IsOk());
  EXPECT_THAT(ops_.DeleteVolume(del), IsOk());
  EXPECT_TRUE(absl::IsNotFound(images_.Size({"rbd", "pvc-a"}).status()));
  del.set_volume_id("not-ours");
  EXPECT_THAT(ops_.DeleteVolume(del), IsOk());
}

TEST_F(ControllerOpsTest, ListVolumesPaginatesAndRejectsForeignTokens) {
  for (const char* name : {"a", "b", "c"}) {
    csi::v1::CreateVolumeResponse r;
    ASSERT_THAT(ops_.CreateVolume(Create(name, 1 << 20), &r), IsOk());
  }
  csi::v1::ListVolumesRequest req;
  req.set_max_entries(2);
  csi::v1::ListVolumesResponse page1, page2;
  ASSERT_THAT(ops_.ListVolumes(req, &page1), IsOk());
  ASSERT_EQ(page1.entries_size(), 2);
  EXPECT_EQ(page1.entries(0).volume().volume_id(), "rbd/a");
  ASSERT_FALSE(page1.next_token().empty());
  req.set_starting_token(page1.next_token());
  ASSERT_THAT(ops_.ListVolumes(req, &page2), IsOk());
  ASSERT_EQ(page2.entries_size(), 1);
  EXPECT_EQ(page2.entries(0).volume().volume_id(), "rbd/c");
  EXPECT_TRUE(page2.next_token().empty());
  req.set_starting_token("bogus");
  csi::v1::ListVolumesResponse bad;
  EXPECT_THAT(ops_.ListVolumes(req, &bad),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("bogus")));
}

TEST_F(ControllerOpsTest, ExpandGrowsTheImageAndAsksForNodeExpansion) {
  csi::v1::CreateVolumeResponse created;
  ASSERT_THAT(ops_.CreateVolume(Create("pvc-a", 1 << 20), &created), IsOk());
  csi::v1::ControllerExpandVolumeRequest req;
  req.set_volume_id("rbd/pvc-a");
  req.mutable_capacity_range()->set_required_bytes(4 << 20);
  csi::v1::ControllerExpandVolumeResponse resp;
  ASSERT_THAT(ops_.ExpandVolume(req, &resp), IsOk());
  EXPECT_EQ(resp.capacity_bytes(), 4 << 20);
  EXPECT_TRUE(resp.node_expansion_required());
  EXPECT_EQ(*images_.Size({"rbd", "pvc-a"}), 4u << 20);
  req.set_volume_id("rbd/missing");
  EXPECT_THAT(ops_.ExpandVolume(req, &resp), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

// Issue 8: sizes at the int64 edge were INVALID_ARGUMENT or INTERNAL; CSI says OUT_OF_RANGE.
// The bound is the controller's, so it holds for every backend.
TEST_F(ControllerOpsTest, CapacityBeyondTheLargestVolumeIsOutOfRange) {
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  for (int64_t huge :
       {kMax, kMax - 511, int64_t{1} << 62, static_cast<int64_t>(kMaxImageSize) + 1}) {
    SCOPED_TRACE(huge);
    csi::v1::CreateVolumeResponse resp;
    EXPECT_THAT(ops_.CreateVolume(Create("pvc-huge", huge), &resp),
                StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("largest volume")));
    EXPECT_THAT(ops_.CreateVolume(Create("pvc-huge", 0, huge), &resp), IsOk());  // a limit only
    csi::v1::DeleteVolumeRequest del;
    del.set_volume_id(resp.volume().volume_id());
    ASSERT_THAT(ops_.DeleteVolume(del), IsOk());
  }
  EXPECT_THAT(images_.List(), IsOkAndHolds(::testing::IsEmpty()));

  csi::v1::CreateVolumeResponse created;
  ASSERT_THAT(ops_.CreateVolume(Create("pvc-a", 1 << 20), &created), IsOk());
  csi::v1::ControllerExpandVolumeRequest req;
  req.set_volume_id("rbd/pvc-a");
  for (int64_t huge : {kMax, kMax - 511}) {
    req.mutable_capacity_range()->set_required_bytes(huge);
    csi::v1::ControllerExpandVolumeResponse resp;
    EXPECT_THAT(ops_.ExpandVolume(req, &resp),
                StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("largest volume")));
  }
  EXPECT_EQ(*images_.Size({"rbd", "pvc-a"}), 1u << 20);
}

TEST_F(ControllerOpsTest, ValidateConfirmsSupportedCapabilitiesOnly) {
  csi::v1::CreateVolumeResponse created;
  ASSERT_THAT(ops_.CreateVolume(Create("pvc-a", 1 << 20), &created), IsOk());
  csi::v1::ValidateVolumeCapabilitiesRequest req;
  req.set_volume_id("rbd/pvc-a");
  *req.add_volume_capabilities() = Create("x", 1).volume_capabilities(0);
  csi::v1::ValidateVolumeCapabilitiesResponse ok;
  ASSERT_THAT(ops_.ValidateVolumeCapabilities(req, &ok), IsOk());
  EXPECT_TRUE(ok.has_confirmed());
  req.mutable_volume_capabilities(0)->mutable_access_mode()->set_mode(
      csi::v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
  csi::v1::ValidateVolumeCapabilitiesResponse refused;
  ASSERT_THAT(ops_.ValidateVolumeCapabilities(req, &refused), IsOk());
  EXPECT_FALSE(refused.has_confirmed());
  EXPECT_THAT(refused.message(), HasSubstr("MULTI_NODE_MULTI_WRITER"));
  req.set_volume_id("rbd/nope");
  EXPECT_THAT(ops_.ValidateVolumeCapabilities(req, &refused),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(ControllerOpsTest, SnapshotsListPagesAndSeedNewVolumes) {
  csi::v1::CreateVolumeResponse src;
  ASSERT_THAT(ops_.CreateVolume(Create("src", 1 << 20), &src), IsOk());
  csi::v1::CreateSnapshotRequest sreq;
  sreq.set_source_volume_id(src.volume().volume_id());
  csi::v1::CreateSnapshotResponse s1, s2, again;
  sreq.set_name("snap-1");
  ASSERT_THAT(ops_.CreateSnapshot(sreq, &s1), IsOk());
  EXPECT_EQ(s1.snapshot().snapshot_id(), "rbd/src@snap-1");
  EXPECT_EQ(s1.snapshot().source_volume_id(), "rbd/src");
  EXPECT_EQ(s1.snapshot().size_bytes(), 1 << 20);
  EXPECT_TRUE(s1.snapshot().ready_to_use());
  EXPECT_GT(s1.snapshot().creation_time().seconds(), 0);
  ASSERT_THAT(ops_.CreateSnapshot(sreq, &again), IsOk());
  EXPECT_EQ(again.snapshot().snapshot_id(), s1.snapshot().snapshot_id());
  sreq.set_name("snap-2");
  ASSERT_THAT(ops_.CreateSnapshot(sreq, &s2), IsOk());
  sreq.set_source_volume_id("rbd/missing");
  EXPECT_THAT(ops_.CreateSnapshot(sreq, &again), StatusIs(absl::StatusCode::kNotFound, _));

  csi::v1::ListSnapshotsRequest lreq;
  lreq.set_max_entries(1);
  csi::v1::ListSnapshotsResponse page1, page2, by_id, junk;
  ASSERT_THAT(ops_.ListSnapshots(lreq, &page1), IsOk());
  ASSERT_EQ(page1.entries_size(), 1);
  ASSERT_FALSE(page1.next_token().empty());
  lreq.set_starting_token(page1.next_token());
  ASSERT_THAT(ops_.ListSnapshots(lreq, &page2), IsOk());
  ASSERT_EQ(page2.entries_size(), 1);
  EXPECT_TRUE(page2.next_token().empty());
  EXPECT_NE(page1.entries(0).snapshot().snapshot_id(), page2.entries(0).snapshot().snapshot_id());
  lreq.set_starting_token("junk");
  EXPECT_THAT(ops_.ListSnapshots(lreq, &junk), StatusIs(absl::StatusCode::kAborted, _));
  csi::v1::ListSnapshotsRequest id_req;
  id_req.set_snapshot_id(s2.snapshot().snapshot_id());
  ASSERT_THAT(ops_.ListSnapshots(id_req, &by_id), IsOk());
  ASSERT_EQ(by_id.entries_size(), 1);
  EXPECT_EQ(by_id.entries(0).snapshot().snapshot_id(), "rbd/src@snap-2");

  auto from_snap = Create("from-snap", 0);
  from_snap.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(
      s1.snapshot().snapshot_id());
  csi::v1::CreateVolumeResponse clone;
  ASSERT_THAT(ops_.CreateVolume(from_snap, &clone), IsOk());
  EXPECT_EQ(clone.volume().capacity_bytes(), 1 << 20);  // the snapshot's size
  EXPECT_EQ(clone.volume().content_source().snapshot().snapshot_id(), "rbd/src@snap-1");
  from_snap.set_name("from-nothing");
  from_snap.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id("rbd/x@none");
  EXPECT_THAT(ops_.CreateVolume(from_snap, &clone), StatusIs(absl::StatusCode::kNotFound, _));

  csi::v1::DeleteSnapshotRequest dreq;
  dreq.set_snapshot_id(s1.snapshot().snapshot_id());
  EXPECT_THAT(ops_.DeleteSnapshot(dreq), IsOk());
  EXPECT_THAT(ops_.DeleteSnapshot(dreq), IsOk());
  dreq.set_snapshot_id("not an id at all");
  EXPECT_THAT(ops_.DeleteSnapshot(dreq), IsOk());
}

TEST_F(ControllerOpsTest, QosParametersAreCheckedAndApplied) {
  auto req = Create("qos", 1 << 20);
  (*req.mutable_mutable_parameters())["rbd_qos_bogus_limit"] = "1";
  csi::v1::CreateVolumeResponse resp;
  EXPECT_THAT(ops_.CreateVolume(req, &resp),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rbd_qos_bogus_limit")));
  req.mutable_mutable_parameters()->clear();
  (*req.mutable_mutable_parameters())["rbd_qos_iops_limit"] = "100";
  ASSERT_THAT(ops_.CreateVolume(req, &resp), IsOk());
  csi::v1::ControllerModifyVolumeRequest mreq;
  mreq.set_volume_id(resp.volume().volume_id());
  (*mreq.mutable_mutable_parameters())["rbd_qos_write_bps_limit"] = "ten";
  csi::v1::ControllerModifyVolumeResponse mresp;
  EXPECT_THAT(ops_.ModifyVolume(mreq, &mresp), StatusIs(absl::StatusCode::kInvalidArgument, _));
  (*mreq.mutable_mutable_parameters())["rbd_qos_write_bps_limit"] = "1048576";
  EXPECT_THAT(ops_.ModifyVolume(mreq, &mresp), IsOk());
  mreq.set_volume_id("rbd/missing");
  EXPECT_THAT(ops_.ModifyVolume(mreq, &mresp), StatusIs(absl::StatusCode::kNotFound, _));
}

}  // namespace
}  // namespace rbdcsi
