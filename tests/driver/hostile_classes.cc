// The classes of hostile requests (issue 8), each with the code rbdcsi documents for it.
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/driver/hostile_requests.h"

namespace rbdcsi {
namespace {

using Code = grpc::StatusCode;
const std::string kLong(5000, 'a');  // above the 4096-byte bound of every string field

void Fill(google::protobuf::Map<std::string, std::string>* map, int n) {
  for (int i = 0; i < n; ++i) (*map)[absl::StrCat("k", i)] = "v";
}

}  // namespace

// Every string field at most 4096 bytes, every map at most 128 entries.
// Over 60 lines on purpose: a table of cases, one request each, read as one list.
void HostileCases::Bounds() {
  const std::string c = "bounds";
  auto stage = [this](auto edit) {
    return [this, edit] {
      auto req = Stage(fresh_);
      edit(req);
      return Call(req);
    };
  };
  using SReq = csi::v1::NodeStageVolumeRequest;
  Add(c, "stage volume_id", kInvalid, stage([](SReq& r) { r.set_volume_id(kLong); }));
  Add(c, "stage staging path", kInvalid,
      stage([](SReq& r) { r.set_staging_target_path("/" + kLong); }));
  Add(c, "stage fs_type", kInvalid,
      stage([](SReq& r) { r.mutable_volume_capability()->mutable_mount()->set_fs_type(kLong); }));
  Add(c, "stage mount flag", kInvalid, stage([](SReq& r) {
        r.mutable_volume_capability()->mutable_mount()->add_mount_flags(kLong);
      }));
  Add(c, "stage context value", kInvalid,
      stage([](SReq& r) { (*r.mutable_volume_context())["pool"] = kLong; }));
  Add(c, "stage 200 KB monitors", kInvalid, stage([](SReq& r) {
        (*r.mutable_volume_context())["monitors"] = std::string(200 << 10, '1');
      }));
  Add(c, "stage context key", kInvalid,
      stage([](SReq& r) { (*r.mutable_volume_context())[kLong] = "x"; }));
  Add(c, "stage secret value", kInvalid,
      stage([](SReq& r) { (*r.mutable_secrets())["userKey"] = kLong; }));
  Add(c, "stage 129 context entries", kInvalid,
      stage([](SReq& r) { Fill(r.mutable_volume_context(), 129); }));
  Add(c, "stage 129 secrets", kInvalid, stage([](SReq& r) { Fill(r.mutable_secrets(), 129); }));
  Add(c, "stage 129 publish_context entries", kInvalid,
      stage([](SReq& r) { Fill(r.mutable_publish_context(), 129); }));
  Add(c, "publish target", kInvalid, [this] { return Call(Publish("/" + kLong)); });
  Add(c, "publish 129 context entries", kInvalid, [this] {
    auto req = Publish(kubelet_ + "/pods/p2/mount");
    Fill(req.mutable_volume_context(), 129);
    return Call(req);
  });
  Add(c, "create name", kInvalid, [this] { return Call(Create(kLong)); });
  Add(c, "create parameter value", kInvalid, [this] {
    auto req = Create("bounds-param");
    (*req.mutable_parameters())["pool"] = kLong;
    return Call(req);
  });
  Add(c, "create 129 parameters", kInvalid, [this] {
    auto req = Create("bounds-params");
    Fill(req.mutable_parameters(), 129);
    return Call(req);
  });
  Add(c, "create 129 secrets", kInvalid, [this] {
    auto req = Create("bounds-secrets");
    Fill(req.mutable_secrets(), 129);
    return Call(req);
  });
  Add(c, "unpublish target", kInvalid, [this] {
    csi::v1::NodeUnpublishVolumeRequest req;
    req.set_volume_id(staged_);
    req.set_target_path("/" + kLong);
    csi::v1::NodeUnpublishVolumeResponse resp;
    return plugin_->node().NodeUnpublishVolume(Context().get(), req, &resp);
  });
  Add(c, "unstage staging path", kInvalid, [this] {
    csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id(staged_);
    req.set_staging_target_path("/" + kLong);
    csi::v1::NodeUnstageVolumeResponse resp;
    return plugin_->node().NodeUnstageVolume(Context().get(), req, &resp);
  });
  Add(c, "stats volume_path", kInvalid, [this] { return Stats("/" + kLong); });
  Add(c, "delete volume_id", kInvalid, [this] {
    csi::v1::DeleteVolumeRequest req;
    req.set_volume_id(kLong);
    csi::v1::DeleteVolumeResponse resp;
    return plugin_->controller().DeleteVolume(Context().get(), req, &resp);
  });
  Add(c, "snapshot name", kInvalid, [this] {
    csi::v1::CreateSnapshotRequest req;
    req.set_source_volume_id(staged_);
    req.set_name(kLong);
    csi::v1::CreateSnapshotResponse resp;
    return plugin_->controller().CreateSnapshot(Context().get(), req, &resp);
  });
  Add(c, "expand volume_id", kInvalid, [this] {
    csi::v1::ControllerExpandVolumeRequest req;
    req.set_volume_id(kLong);
    req.mutable_capacity_range()->set_required_bytes(1 << 30);
    csi::v1::ControllerExpandVolumeResponse resp;
    return plugin_->controller().ControllerExpandVolume(Context().get(), req, &resp);
  });
}

// String fields that are not UTF-8 (proto3 refuses them; rbdcsi answers INVALID_ARGUMENT).
void HostileCases::Utf8() {
  const std::string c = "utf8";
  for (const std::string bad : {"\xff\xfe", "\xc3\x28", "\xed\xa0\x80", "\xc0\xaf"}) {
    Add(c, "stage volume_id", kInvalid, [this, bad] { return Call(Stage("rbd/x" + bad)); });
    Add(c, "stage staging path", kInvalid, [this, bad] {
      auto req = Stage(fresh_);
      req.set_staging_target_path(kubelet_ + "/" + bad);
      return Call(req);
    });
    Add(c, "stage context key", kInvalid, [this, bad] {
      auto req = Stage(fresh_);
      (*req.mutable_volume_context())[bad] = "x";
      return Call(req);
    });
    Add(c, "stage secret", kInvalid, [this, bad] {
      auto req = KrbdStage();
      (*req.mutable_secrets())["userKey"] = "S3NT1NEL-flag" + bad;
      return Call(req);
    });
    Add(c, "stage mount flag", kInvalid, [this, bad] {
      auto req = Stage(fresh_);
      req.mutable_volume_capability()->mutable_mount()->add_mount_flags("noatime" + bad);
      return Call(req);
    });
    Add(c, "publish target", kInvalid,
        [this, bad] { return Call(Publish(kubelet_ + "/pods/p2/" + bad)); });
    Add(c, "create name", kInvalid, [this, bad] { return Call(Create("pvc" + bad)); });
    Add(c, "stats path", kInvalid, [this, bad] { return Stats(staging_ + bad); });
  }
}

// The mount-flag policy: anything off the allowlist is INVALID_ARGUMENT, at stage and publish.
// Over 60 lines on purpose: a table of cases, one request each, read as one list.
void HostileCases::MountFlags() {
  const std::string c = "mount-flags";
  const std::vector<std::string> refused = {"loop",
                                            "offset=0",
                                            "sizelimit=4096",
                                            "encryption=aes",
                                            "shared",
                                            "rshared",
                                            "slave",
                                            "private",
                                            "unbindable",
                                            "make-private",
                                            "make-rshared",
                                            "bind",
                                            "rbind",
                                            "move",
                                            "remount",
                                            "X-mount.mkdir",
                                            "x-systemd.automount",
                                            "errors=panic",
                                            "user",
                                            "users",
                                            "owner",
                                            "group",
                                            "defaults",
                                            "nofail",
                                            "_netdev",
                                            "helper=ext4",
                                            "comment=x",
                                            std::string("noatime\0rw", 10),
                                            "noatime,loop",
                                            "noatime rw",
                                            "\x01",
                                            "noatim\xc3\xa9",
                                            std::string(300, 'n'),
                                            "",
                                            "data=bogus",
                                            "commit=-1"};
  for (const std::string& flag : refused) {
    Add(c, "stage " + flag, kInvalid, [this, flag] {
      auto req = Stage(fresh_);
      req.mutable_volume_capability()->mutable_mount()->add_mount_flags(flag);
      return Call(req);
    });
  }
  for (const std::string flag : {"loop", "shared", "X-mount.mkdir", "errors=panic"}) {
    Add(c, "publish " + flag, kInvalid, [this, flag] {
      auto req = Publish(kubelet_ + "/pods/p2/mount");
      req.mutable_volume_capability()->mutable_mount()->add_mount_flags(flag);
      return Call(req);
    });
  }
  Add(c, "rw for a read-only mode", kInvalid, [this] {
    auto req = Stage(fresh_);
    *req.mutable_volume_capability() = Cap("ext4", /*read_only=*/true);
    req.mutable_volume_capability()->mutable_mount()->add_mount_flags("rw");
    return Call(req);
  });
  Add(c, "xfs-only flag on ext4", kInvalid, [this] {
    auto req = Stage(fresh_);
    req.mutable_volume_capability()->mutable_mount()->add_mount_flags("inode64");
    return Call(req);
  });
}

}  // namespace rbdcsi

namespace rbdcsi {

// Volume ids: junk bytes are INVALID_ARGUMENT, printable ids naming no volume NOT_FOUND, and a
// second id for a staged image FAILED_PRECONDITION.
void HostileCases::Ids() {
  const std::string c = "ids";
  const std::vector<std::pair<std::string, Code>> ids = {
      {"", kInvalid},
      {"rbd/x\n2026-11-30T00:00:00Z I forged line", kInvalid},
      {"rbd/x\x7f", kInvalid},
      {"rbd/x\t", kInvalid},
      {std::string("rbd/x\0y", 7), kInvalid},
      {"rbd/" + std::string(125, 'a'), kInvalid},
      {"../../etc/passwd", Code::NOT_FOUND},
      {"rbd/../x", Code::NOT_FOUND},
      {"/rbd/x", Code::NOT_FOUND},
      {"rbd//x", Code::NOT_FOUND},
      {"a/b/c/d", Code::NOT_FOUND},
      {"rbd/x@snap", Code::NOT_FOUND},
      {"rbd/nonexistent", Code::NOT_FOUND},
      {"-rf", Code::NOT_FOUND},
  };
  for (const auto& [id, want] : ids) {
    Add(c, "stage " + id, want, [this, id = id] { return Call(Stage(id)); });
  }
  Add(c, "publish unknown volume", Code::NOT_FOUND, [this] {
    auto req = Publish(kubelet_ + "/pods/p2/mount");
    req.set_volume_id("rbd/nonexistent");
    return Call(req);
  });
  Add(c, "unstage forged id", kInvalid, [this] {
    csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id("rbd/x\nforged");
    req.set_staging_target_path(staging_);
    csi::v1::NodeUnstageVolumeResponse resp;
    return plugin_->node().NodeUnstageVolume(Context().get(), req, &resp);
  });
  Add(c, "expand unknown volume", Code::NOT_FOUND, [this] {
    csi::v1::ControllerExpandVolumeRequest req;
    req.set_volume_id("rbd/../x");
    req.mutable_capacity_range()->set_required_bytes(1 << 30);
    csi::v1::ControllerExpandVolumeResponse resp;
    return plugin_->controller().ControllerExpandVolume(Context().get(), req, &resp);
  });
  Add(c, "context pool ../..", kInvalid, [this] {
    auto req = Stage(fresh_);
    (*req.mutable_volume_context())["pool"] = "../..";
    return Call(req);
  });
  Add(c, "context image a/b", kInvalid, [this] {
    auto req = Stage(fresh_);
    (*req.mutable_volume_context())["image"] = "a/b";
    return Call(req);
  });
  Add(c, "second id for the staged image", Code::FAILED_PRECONDITION, [this] {
    auto req = Stage("alias");
    (*req.mutable_volume_context())["pool"] = "rbd";
    (*req.mutable_volume_context())["image"] = "good";
    return Call(req);
  });
}

// Secrets with odd bytes, and errors that would name them: refused, never echoed or logged.
void HostileCases::Secrets() {
  const std::string c = "secrets";
  for (const std::string user : {"-x", "--id", "-", "-m 127.0.0.1"}) {
    Add(c, "userID " + user, kInvalid, [this, user] {
      auto req = KrbdStage();
      (*req.mutable_secrets())["userID"] = user;
      return Call(req);
    });
  }
  Add(c, "in-tree user -x", kInvalid, [this] {
    auto req = KrbdStage();
    req.mutable_secrets()->erase("userID");
    (*req.mutable_volume_context())["user"] = "-x";
    return Call(req);
  });
  Add(c, "no monitors", kInvalid, [this] {
    auto req = KrbdStage();
    req.mutable_volume_context()->erase("monitors");
    return Call(req);
  });
  Add(c, "secret in a relative path", kInvalid, [this] {
    auto req = KrbdStage();
    (*req.mutable_secrets())["other"] = "S3NT1NEL-path-part";
    req.set_staging_target_path("relative/S3NT1NEL-path-part");
    return Call(req);
  });
  Add(c, "secret as a mount flag", kInvalid, [this] {
    auto req = KrbdStage();
    (*req.mutable_secrets())["flag"] = "S3NT1NEL-flag";
    req.mutable_volume_capability()->mutable_mount()->add_mount_flags("S3NT1NEL-flag");
    return Call(req);
  });
  Add(c, "3-byte secret in a path", kInvalid, [this] {
    auto req = KrbdStage();
    (*req.mutable_secrets())["userKey"] = "q\tz";
    req.set_staging_target_path(kubelet_ + "/q\tz/../x");
    return Call(req);
  });
  Add(c, "secret with odd bytes in the volume id", kInvalid, [this] {
    auto req = KrbdStage();
    req.set_volume_id(secrets_[0]);
    return Call(req);
  });
  Add(c, "create: secret as a parameter name", kInvalid, [this] {
    auto req = Create("secret-param");
    (*req.mutable_secrets())["userKey"] = "S3NT1NEL-path-part";
    (*req.mutable_parameters())["S3NT1NEL-path-part"] = "x";
    return Call(req);
  });
}

}  // namespace rbdcsi
