// What the two race tests (node_race_test: in-process fakes; race_test: the real server) share:
// the names of one image, the calls, and their shuffled, parallel plan.
#ifndef RBDCSI_TESTS_DRIVER_RACE_PLAN_H_
#define RBDCSI_TESTS_DRIVER_RACE_PLAN_H_

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "csi.pb.h"

namespace rbdcsi {

// One volume id of an image and the volume context that goes with it.
struct RaceName {
  std::string id;
  std::map<std::string, std::string> context;
  int image = 0;  // dNN
};

// Every spelling of rbd/dNN a stage request may use on the loop backend: the canonical id, the
// bare image name (default pool), and alias ids whose context names pool and image, or only
// the image. 4 names per image, numbered in order: DIR/stage/N and DIR/pods/N/m are name N's.
inline std::vector<RaceName> RaceNames(int images) {
  std::vector<RaceName> names;
  for (int i = 0; i < images; ++i) {
    const std::string d = absl::StrFormat("d%02d", i);
    names.push_back({"rbd/" + d, {}, i});
    names.push_back({d, {}, i});
    names.push_back({"pvc-" + d, {{"pool", "rbd"}, {"image", d}}, i});
    names.push_back({"static-" + d, {{"image", d}}, i});
  }
  return names;
}

enum class RaceOp { kStage, kPublish, kUnpublish, kUnstage };

// One round: for every name duplicate stages and publishes, an unpublish and duplicate unstages,
// all shuffled together.
inline std::vector<std::pair<RaceOp, size_t>> RaceRound(size_t names, std::mt19937& rng) {
  std::vector<std::pair<RaceOp, size_t>> calls;
  for (size_t n = 0; n < names; ++n) {
    for (RaceOp op : {RaceOp::kStage, RaceOp::kStage, RaceOp::kPublish, RaceOp::kPublish,
                      RaceOp::kUnpublish, RaceOp::kUnstage, RaceOp::kUnstage}) {
      calls.emplace_back(op, n);
    }
  }
  std::shuffle(calls.begin(), calls.end(), rng);
  return calls;
}

// Runs fn(0) ... fn(count - 1) on `threads` threads at once, each taking the next index.
inline void RunParallel(int threads, size_t count, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < count; i = next++) fn(i);
    });
  }
  for (std::thread& t : pool) t.join();
}

inline csi::v1::VolumeCapability RaceCapability() {
  csi::v1::VolumeCapability cap;
  cap.mutable_mount()->set_fs_type("ext4");
  cap.mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  return cap;
}

inline csi::v1::NodeStageVolumeRequest RaceStage(const RaceName& n, const std::string& staging) {
  csi::v1::NodeStageVolumeRequest req;
  req.set_volume_id(n.id);
  req.set_staging_target_path(staging);
  *req.mutable_volume_capability() = RaceCapability();
  for (const auto& [k, v] : n.context) (*req.mutable_volume_context())[k] = v;
  return req;
}

inline csi::v1::NodePublishVolumeRequest RacePublish(const RaceName& n, const std::string& staging,
                                                     const std::string& target) {
  csi::v1::NodePublishVolumeRequest req;
  req.set_volume_id(n.id);
  req.set_staging_target_path(staging);
  req.set_target_path(target);
  *req.mutable_volume_capability() = RaceCapability();
  return req;
}

inline csi::v1::NodeUnpublishVolumeRequest RaceUnpublish(const RaceName& n,
                                                         const std::string& target) {
  csi::v1::NodeUnpublishVolumeRequest req;
  req.set_volume_id(n.id);
  req.set_target_path(target);
  return req;
}

inline csi::v1::NodeUnstageVolumeRequest RaceUnstage(const RaceName& n,
                                                     const std::string& staging) {
  csi::v1::NodeUnstageVolumeRequest req;
  req.set_volume_id(n.id);
  req.set_staging_target_path(staging);
  return req;
}

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_DRIVER_RACE_PLAN_H_
