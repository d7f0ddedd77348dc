// Hostile paths (issue 8, defect 4): symlinks in the last component or a parent, /proc magic
// links, the state directory, the volume's own staging path as a target, "..", and publishes
// that would create directories outside the kubelet directory. Each is INVALID_ARGUMENT before
// anything happens (README, "Paths in requests").
#include <unistd.h>

#include <filesystem>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/driver/hostile_requests.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;
using Code = grpc::StatusCode;

csi::v1::VolumeCapability Block() {
  csi::v1::VolumeCapability cap;
  cap.mutable_block();
  cap.mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  return cap;
}

}  // namespace

void HostileCases::MakePathTraps() {
  // Made before the test's first snapshot; the cases must leave them as they are.
  const std::string traps = kubelet_ + "/traps";
  std::error_code ec;  // already there from an earlier All()
  fs::create_directories(traps + "/real/dir", ec);
  fs::create_directories(outside_ + "/dir", ec);
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {traps + "/real/dir", traps + "/link-to-dir"},
           {outside_ + "/dir", traps + "/link-outside"},
           {"/etc", traps + "/link-to-etc"},
           {traps + "/real", traps + "/link-parent"},
           {plugin_->state_dir(), traps + "/link-to-state"}}) {
    fs::create_symlink(from, to, ec);
  }
}

// Over 60 lines on purpose: a table of cases, one request each, read as one list.
void HostileCases::Paths() {
  const std::string c = "paths";
  const std::string traps = kubelet_ + "/traps";
  std::vector<std::pair<std::string, std::string>> stagings = {
      {"a symlink to a directory", traps + "/link-to-dir"},
      {"a symlink out of the kubelet dir", traps + "/link-outside"},
      {"under a symlinked parent", traps + "/link-parent/dir"},
      {"a new directory under a symlinked parent", traps + "/link-parent/new"},
      {"through a symlink to the state dir", traps + "/link-to-state/volumes"},
      {"/proc/self/cwd", "/proc/self/cwd/kubelet/traps/real/dir"},
      {"/proc/self/root", "/proc/self/root" + traps + "/real/dir"},
      {"/proc/1/root", "/proc/1/root" + traps + "/real/dir"},
      {"inside the state dir", plugin_->state_dir() + "/volumes"},
      {"the state dir itself", plugin_->state_dir()},
      {"inside the data dir", plugin_->data_dir() + "/images"},
      {"the kubelet dir itself", kubelet_},
      {"with ..", kubelet_ + "/traps/real/../real/dir"},
      {"escaping with ..", kubelet_ + "/../state/volumes"},
      {"/dev/shm", "/dev/shm/rbdcsi-hostile"},
      {"/sys", "/sys/kernel/rbdcsi-hostile"},
      {"outside the kubelet dir", outside_ + "/dir"},
  };
  for (const auto& [name, path] : stagings) {
    Add(c, "stage at " + name, kInvalid, [this, path = path] {
      auto req = Stage(fresh_);
      req.set_staging_target_path(path);
      return Call(req);
    });
    Add(c, "unstage at " + name, kInvalid, [this, path = path] {
      csi::v1::NodeUnstageVolumeRequest req;
      req.set_volume_id(staged_);
      req.set_staging_target_path(path);
      csi::v1::NodeUnstageVolumeResponse resp;
      return plugin_->node().NodeUnstageVolume(Context().get(), req, &resp);
    });
  }
  // Unpublish of a path inside the kubelet dir where nothing of this volume is published and
  // nothing is mounted is OK (CSI: already unpublished), and touches nothing.
  std::vector<std::tuple<std::string, std::string, Code>> targets = {
      {"a symlink to /etc", traps + "/link-to-etc", kInvalid},
      {"a symlink to a directory", traps + "/link-to-dir", kInvalid},
      {"under a symlinked parent", traps + "/link-parent/new", kInvalid},
      {"/proc/self/cwd", "/proc/self/cwd/kubelet/pods/p1/other", kInvalid},
      {"the volume's own staging path", staging_, kInvalid},
      {"under the staging path", staging_ + "/sub", Code::OK},
      {"the staging path's parent", kubelet_ + "/plugins/staging", Code::OK},
      {"with ..", kubelet_ + "/pods/p1/../p1/other", kInvalid},
      {"inside the state dir", plugin_->state_dir() + "/volumes/t", kInvalid},
  };
  for (const auto& [name, path, unpublish] : targets) {
    Add(c, "publish at " + name, kInvalid, [this, path = path] { return Call(Publish(path)); });
    Add(c, "unpublish at " + name, unpublish, [this, path = path] {
      csi::v1::NodeUnpublishVolumeRequest req;
      req.set_volume_id(staged_);
      req.set_target_path(path);
      csi::v1::NodeUnpublishVolumeResponse resp;
      return plugin_->node().NodeUnpublishVolume(Context().get(), req, &resp);
    });
  }
  // A block publish creates only the target file itself, never its parents.
  for (const auto& [name, path] : std::vector<std::pair<std::string, std::string>>{
           {"missing parents in the kubelet dir", kubelet_ + "/pods/new-pod/dev/volume"},
           {"missing parents outside it", outside_ + "/new-pod/dev/volume"},
           {"a symlinked parent", traps + "/link-outside/volume"}}) {
    Add(c, "block publish with " + name, kInvalid, [this, path = path] {
      auto req = Publish(path);
      *req.mutable_volume_capability() = Block();
      return Call(req);
    });
  }
}

}  // namespace rbdcsi
