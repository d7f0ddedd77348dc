#include "tests/driver/hostile_requests.h"

#include <chrono>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rbdcsi {
namespace {

using Code = grpc::StatusCode;
using Mode = csi::v1::VolumeCapability::AccessMode;

// A sentinel of odd bytes (tab, carriage return, control, non-ASCII): redaction works on raw
// bytes, before any escaping.
const std::string kSentinel = "S3NT1NEL\t\r\x01\xc3\xa9key==";

}  // namespace

std::unique_ptr<grpc::ClientContext> HostileCases::Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return ctx;
}

HostileCases::HostileCases(Plugin* plugin, std::string staged, std::string fresh,
                           std::string staging, std::string target, std::string kubelet)
    : plugin_(plugin),
      staged_(std::move(staged)),
      fresh_(std::move(fresh)),
      staging_(std::move(staging)),
      target_(std::move(target)),
      kubelet_(std::move(kubelet)),
      outside_(kubelet_ + "-outside"),
      secrets_({kSentinel, "S3NT1NEL-path-part", "S3NT1NEL-flag", "q\tz"}) {}

csi::v1::VolumeCapability HostileCases::Cap(const std::string& fs, bool read_only) {
  csi::v1::VolumeCapability cap;
  cap.mutable_mount()->set_fs_type(fs);
  cap.mutable_access_mode()->set_mode(read_only ? Mode::SINGLE_NODE_READER_ONLY
                                                : Mode::SINGLE_NODE_WRITER);
  return cap;
}

csi::v1::NodeStageVolumeRequest HostileCases::Stage(const std::string& volume_id) const {
  csi::v1::NodeStageVolumeRequest req;
  req.set_volume_id(volume_id);
  req.set_staging_target_path(kubelet_ + "/plugins/staging/fresh");
  *req.mutable_volume_capability() = Cap("ext4");
  return req;
}

csi::v1::NodeStageVolumeRequest HostileCases::KrbdStage() const {
  csi::v1::NodeStageVolumeRequest req = Stage("pool2/img2");
  (*req.mutable_volume_context())["mapper"] = "krbd";
  (*req.mutable_volume_context())["monitors"] = "127.0.0.1:1";
  (*req.mutable_secrets())["userID"] = "kube";
  (*req.mutable_secrets())["userKey"] = kSentinel;
  return req;
}

csi::v1::CreateVolumeRequest HostileCases::Create(const std::string& name) const {
  csi::v1::CreateVolumeRequest req;
  req.set_name(name);
  req.mutable_capacity_range()->set_required_bytes(1 << 20);
  *req.add_volume_capabilities() = Cap("ext4");
  return req;
}

csi::v1::NodePublishVolumeRequest HostileCases::Publish(const std::string& target) const {
  csi::v1::NodePublishVolumeRequest req;
  req.set_volume_id(staged_);
  req.set_staging_target_path(staging_);
  req.set_target_path(target);
  *req.mutable_volume_capability() = Cap("ext4");
  return req;
}

grpc::Status HostileCases::Call(const csi::v1::NodeStageVolumeRequest& req) {
  csi::v1::NodeStageVolumeResponse resp;
  return plugin_->node().NodeStageVolume(Context().get(), req, &resp);
}

grpc::Status HostileCases::Call(const csi::v1::NodePublishVolumeRequest& req) {
  csi::v1::NodePublishVolumeResponse resp;
  return plugin_->node().NodePublishVolume(Context().get(), req, &resp);
}

grpc::Status HostileCases::Call(const csi::v1::CreateVolumeRequest& req) {
  csi::v1::CreateVolumeResponse resp;
  return plugin_->controller().CreateVolume(Context().get(), req, &resp);
}

grpc::Status HostileCases::Stats(const std::string& path) {
  csi::v1::NodeGetVolumeStatsRequest req;
  req.set_volume_id(staged_);
  req.set_volume_path(path);
  csi::v1::NodeGetVolumeStatsResponse resp;
  return plugin_->node().NodeGetVolumeStats(Context().get(), req, &resp);
}

void HostileCases::Add(const std::string& klass, const std::string& name, grpc::StatusCode want,
                       std::function<grpc::Status()> call) {
  cases_.push_back({klass, name, std::move(call), want});
}

// The codes issue 8 found wrong.
// Over 60 lines on purpose: a table of cases, one request each, read as one list.
void HostileCases::Codes() {
  const std::string c = "codes";
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  for (const auto& [required, limit, want] :
       std::vector<std::tuple<int64_t, int64_t, Code>>{{kMax, 0, Code::OUT_OF_RANGE},
                                                       {kMax - 511, 0, Code::OUT_OF_RANGE},
                                                       {int64_t{1} << 62, 0, Code::OUT_OF_RANGE},
                                                       {2 << 20, 1 << 20, Code::OUT_OF_RANGE},
                                                       {-1, 0, kInvalid}}) {
    Add(c, absl::StrCat("create ", required, "..", limit), want, [this, r = required, l = limit] {
      auto req = Create(absl::StrCat("huge-", r));
      req.mutable_capacity_range()->set_required_bytes(r);
      req.mutable_capacity_range()->set_limit_bytes(l);
      return Call(req);
    });
  }
  for (int64_t required : {kMax, kMax - 511}) {
    Add(c, absl::StrCat("expand ", required), Code::OUT_OF_RANGE, [this, required] {
      csi::v1::ControllerExpandVolumeRequest req;
      req.set_volume_id(staged_);
      req.mutable_capacity_range()->set_required_bytes(required);
      csi::v1::ControllerExpandVolumeResponse resp;
      return plugin_->controller().ControllerExpandVolume(Context().get(), req, &resp);
    });
  }
  for (const std::string path : {"/", "/proc", "/dev/null", "/etc"}) {
    Add(c, "stats " + path, Code::NOT_FOUND, [this, path] { return Stats(path); });
  }
  Add(c, "stats kubelet dir", Code::NOT_FOUND, [this] { return Stats(kubelet_); });
  Add(c, "stats empty pod dir", Code::NOT_FOUND,
      [this] { return Stats(kubelet_ + "/pods/p2/mount"); });
  for (const auto& [path, required] :
       std::vector<std::pair<std::string, int64_t>>{{"/", 0}, {"", 0}}) {
    Add(c, "node expand at '" + path + "'", path.empty() ? kInvalid : Code::NOT_FOUND,
        [this, path = path, required = required] {
          csi::v1::NodeExpandVolumeRequest req;
          req.set_volume_id(staged_);
          req.set_volume_path(path);
          req.mutable_capacity_range()->set_required_bytes(required);
          csi::v1::NodeExpandVolumeResponse resp;
          return plugin_->node().NodeExpandVolume(Context().get(), req, &resp);
        });
  }
  Add(c, "node expand beyond the device", Code::OUT_OF_RANGE, [this] {
    csi::v1::NodeExpandVolumeRequest req;
    req.set_volume_id(staged_);
    req.set_volume_path(target_);
    req.mutable_capacity_range()->set_required_bytes(std::numeric_limits<int64_t>::max());
    csi::v1::NodeExpandVolumeResponse resp;
    return plugin_->node().NodeExpandVolume(Context().get(), req, &resp);
  });
  for (const std::string path : {"/missing/staging", "/missing/deeper/staging"}) {
    Add(c, "stage at " + path, kInvalid, [this, path] {
      auto req = Stage(fresh_);
      req.set_staging_target_path(kubelet_ + path);
      return Call(req);
    });
  }
  for (const std::string& path :
       std::vector<std::string>{"relative/staging", "/a/./b", std::string("/a\0b", 4)}) {
    Add(c, "stage path " + path, kInvalid, [this, path] {
      auto req = Stage(fresh_);
      req.set_staging_target_path(path);
      return Call(req);
    });
  }
  Add(c, "publish from another staging path", Code::FAILED_PRECONDITION, [this] {
    auto req = Publish(kubelet_ + "/pods/p2/mount");
    req.set_staging_target_path(kubelet_ + "/plugins/staging/other");
    return Call(req);
  });
  Add(c, "stage without capability", kInvalid, [this] {
    auto req = Stage(fresh_);
    req.clear_volume_capability();
    return Call(req);
  });
}

std::vector<HostileCase> HostileCases::All() {
  cases_.clear();
  Bounds();
  Utf8();
  MountFlags();
  Ids();
  Secrets();
  Codes();
  MakePathTraps();
  Paths();
  return std::move(cases_);
}

}  // namespace rbdcsi
