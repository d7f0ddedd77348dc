// Issue 8, "Races", first line: 64 images, each under several volume ids (every spelling the
// codec accepts), staged, published, unpublished and unstaged by many threads at once, with
// duplicate and conflicting calls. The decorated fakes (image_ledger.h) check at every Map and
// every Mount, atomically, that an image is never mapped twice nor mounted twice; between rounds
// and at the end the records, mappings and mounts must agree, and nothing may be left.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "driver/node.h"
#include "driver/testing/scripted_busy_handler.h"
#include "gtest/gtest.h"
#include "mounter/testing/fake_mounter.h"
#include "rbd/mapper_registry.h"
#include "rbd/testing/fake_mapper.h"
#include "tests/driver/image_ledger.h"
#include "tests/driver/node_fixture.h"
#include "tests/driver/race_plan.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;
using ::testing::IsEmpty;

constexpr int kImages = 64;
constexpr int kRounds = 4;
constexpr int kThreads = 8;

class NodeRaceTest : public ::testing::Test {
 protected:
  NodeRaceTest()
      : mounter_(&log_, &script_),
        loop_("loop", &log_, &script_, mounter_.DeviceAdder()),
        checked_loop_(&loop_, &ledger_, &jitter_),
        checked_mounter_(&mounter_, &ledger_, &jitter_),
        filesystems_(&log_, &script_),
        records_(dir_ / "records", RecordStore::Listing::kOwned),
        busy_(&log_) {
    fs::create_directories(records_.dir());
    fs::create_directories(dir_ / "stage");
    EXPECT_THAT(mappers_.AddUnowned(&checked_loop_), IsOk());
    ops_ = NewNodeOpsForTest(dir_.path(), {&checked_mounter_, &filesystems_, &mappers_, &records_,
                                           &locks_, &busy_, nullptr, env_.get()});
    for (int i = 0; i < kImages; ++i) loop_.AddImage(absl::StrFormat("rbd/d%02d", i));
    for (size_t n = 0; n < names_.size(); ++n)
      fs::create_directories(dir_ / absl::StrCat("pods/", n));
  }

  std::string Staging(size_t n) const { return dir_ / absl::StrCat("stage/", n); }
  std::string Target(size_t n) const { return dir_ / absl::StrCat("pods/", n, "/m"); }

  absl::Status Call(RaceOp op, size_t n) {
    switch (op) {
      case RaceOp::kStage:
        return ops_->Stage(RaceStage(names_[n], Staging(n)));
      case RaceOp::kPublish:
        return ops_->Publish(RacePublish(names_[n], Staging(n), Target(n)));
      case RaceOp::kUnpublish:
        return ops_->Unpublish(RaceUnpublish(names_[n], Target(n)));
      case RaceOp::kUnstage:
        return ops_->Unstage(RaceUnstage(names_[n], Staging(n)));
    }
    return absl::InternalError("unknown op");
  }

  // One round of every name's calls, shuffled, on kThreads threads at once.
  void Round(std::mt19937& rng) {
    const std::vector<std::pair<RaceOp, size_t>> calls = RaceRound(names_.size(), rng);
    RunParallel(kThreads, calls.size(), [&](size_t i) {
      const auto [op, n] = calls[i];
      absl::Status st = Call(op, n);
      std::lock_guard<std::mutex> lock(mu_);
      ++codes_[st.code()];
      if (op == RaceOp::kStage && st.ok()) staged_by_[names_[n].image].insert(names_[n].id);
      if (!Allowed(op, st)) unexpected_.push_back(absl::StrCat(names_[n].id, ": ", st.ToString()));
    });
  }

  // What a call may answer in the middle of the races; anything else is a defect.
  static bool Allowed(RaceOp op, const absl::Status& st) {
    switch (st.code()) {
      case absl::StatusCode::kOk:
      case absl::StatusCode::kAborted:             // another call on the volume or image runs
      case absl::StatusCode::kFailedPrecondition:  // another name owns the image; busy
        return true;
      case absl::StatusCode::kNotFound:  // publish of a volume not staged (now)
        return op == RaceOp::kPublish;
      default:
        return false;
    }
  }

  // With no call running: one record per image at most, every mapping and every mount
  // belongs to a record, every staged record is mapped and mounted.
  void CheckConsistent(const std::string& when) {
    std::vector<VolumeRecord> records = records_.List().value();
    std::map<std::string, std::string> owner;  // image -> volume id
    for (const VolumeRecord& r : records) {
      const std::string image = r.image.ToString();
      EXPECT_EQ(owner.count(image), 0u)
          << when << ": " << image << " has records of " << owner[image] << " and " << r.volume_id;
      owner[image] = r.volume_id;
    }
    for (const VolumeRecord& r : records) {
      if (r.step != StageStep::kStaged) continue;
      bool mapped = false, mounted = false;
      for (const MappedDevice& d : loop_.mapped()) mapped |= d.path == r.device.path;
      for (const MountInfo& m : mounter_.table()) {
        mounted |= m.mount_point == r.staging_path && m.minor == r.device.minor;
      }
      EXPECT_TRUE(mapped && mounted) << when << ": " << r.volume_id << " is staged but "
                                     << (mapped ? "not mounted" : "not mapped");
    }
    for (const MappedDevice& d : loop_.mapped()) {
      EXPECT_EQ(owner.count(d.image.ToString()), 1u)
          << when << ": " << d.path << " maps " << d.image.ToString() << " without a record";
    }
    for (const MountInfo& m : mounter_.table()) {
      bool ours = false;
      for (const MappedDevice& d : loop_.mapped()) ours |= d.minor == m.minor;
      EXPECT_TRUE(ours) << when << ": " << m.mount_point << " mounts an unmapped device";
    }
  }

  TempDir dir_{"race"};
  ActionLog log_;
  FailureScript script_;
  ImageLedger ledger_;
  Jitter jitter_{8};
  FakeMounter mounter_;
  FakeMapper loop_;
  CheckedMapper checked_loop_;
  CheckedMounter checked_mounter_;
  MapperRegistry mappers_;
  FakeFilesystems filesystems_;
  RecordStore records_;
  VolumeLocks locks_;
  ScriptedBusyHandler busy_;
  std::unique_ptr<HostEnv> env_ = NewRealHostEnv();
  std::unique_ptr<NodeOps> ops_;
  const std::vector<RaceName> names_ = RaceNames(kImages);

  std::mutex mu_;
  std::map<absl::StatusCode, int> codes_;
  std::map<int, std::set<std::string>> staged_by_;  // image -> ids that staged it
  std::vector<std::string> unexpected_;
};

TEST_F(NodeRaceTest, NoImageIsEverMountedTwiceAndNothingIsLeft) {
  std::mt19937 rng(8);
  for (int round = 0; round < kRounds; ++round) {
    Round(rng);
    CheckConsistent(absl::StrCat("after round ", round));
  }
  // Kubelet's way out: unpublish every target, then unstage every name; each must succeed.
  for (RaceOp op : {RaceOp::kUnpublish, RaceOp::kUnstage}) {
    for (size_t n = 0; n < names_.size(); ++n) EXPECT_THAT(Call(op, n), IsOk()) << names_[n].id;
  }

  const std::vector<std::string> violations = ledger_.Violations();
  EXPECT_EQ(violations.size(), 0u) << "e.g. " << (violations.empty() ? "" : violations[0]);
  EXPECT_EQ(ledger_.max_mounts_per_image(), 1);
  EXPECT_THAT(unexpected_, IsEmpty());
  EXPECT_THAT(loop_.mapped(), IsEmpty());
  EXPECT_THAT(mounter_.table(), IsEmpty());
  EXPECT_EQ(ledger_.mapped() + ledger_.mounts(), 0u);
  EXPECT_THAT(records_.List().value(), IsEmpty());
  for (size_t n = 0; n < names_.size(); ++n) {
    EXPECT_FALSE(fs::exists(Target(n))) << names_[n].id;  // publish's directory went too
  }
  // The races were real: images changed hands between their names, calls collided.
  int shared = 0;
  for (const auto& [image, ids] : staged_by_) shared += ids.size() > 1;
  EXPECT_GT(shared, kImages / 2);
  EXPECT_GT(codes_[absl::StatusCode::kAborted], 0);
  EXPECT_GT(codes_[absl::StatusCode::kFailedPrecondition], 0);
  std::string summary;
  for (const auto& [code, n] : codes_) {
    absl::StrAppend(&summary, " ", absl::StatusCodeToString(code), "=", n);
  }
  std::cout << "race: " << names_.size() << " volume ids of " << kImages << " images, " << kRounds
            << " rounds; " << shared << " images staged under more than one name;" << summary
            << std::endl;
}

}  // namespace
}  // namespace rbdcsi
