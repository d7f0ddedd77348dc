// Snapshots and volumes made from a content source: the part of csi.v1.Controller that
// ImageStore's CreateSnapshot/ListSnapshots/Clone* serve.
#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/status.h"
#include "driver/controller.h"
#include "driver/validation.h"

namespace rbdcsi {
namespace {

void FillSnapshot(const SnapshotInfo& info, csi::v1::Snapshot* out) {
  out->set_snapshot_id(EncodeSnapshotId(info.id));
  out->set_source_volume_id(EncodeVolumeId(info.source));
  out->set_size_bytes(static_cast<int64_t>(info.size_bytes));
  out->set_ready_to_use(info.ready_to_use);
  const int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(info.created.time_since_epoch()).count();
  *out->mutable_creation_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(ns);
}

// An id the CO handed back that names nothing decodable names nothing at all.
template <typename T>
absl::StatusOr<T> NotFoundIfBad(absl::StatusOr<T> decoded, const std::string& what) {
  if (decoded.ok()) return decoded;
  return absl::NotFoundError(
      absl::StrCat(what, " does not exist (", decoded.status().message(), ")"));
}

}  // namespace

absl::StatusOr<ImageInfo> ControllerOps::CreateFromSource(const csi::v1::CreateVolumeRequest& req,
                                                          ImageStore& store, const ImageId& id,
                                                          uint64_t size) {
  // Without a requested size the new volume takes its source's.
  const uint64_t want = req.capacity_range().required_bytes() > 0 ? size : 0;
  const csi::v1::VolumeContentSource& src = req.volume_content_source();
  if (src.has_snapshot()) {
    const std::string& sid = src.snapshot().snapshot_id();
    ASSIGN_OR_RETURN(SnapshotId snap, NotFoundIfBad(DecodeSnapshotId(sid), "snapshot " + sid));
    if (snap.image.cluster_id != id.cluster_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("snapshot ", sid, " is in another cluster than the new volume"));
    }
    return store.CloneFromSnapshot(snap, id, want);
  }
  if (src.has_volume()) {
    const std::string& vid = src.volume().volume_id();
    ASSIGN_OR_RETURN(ImageId from, NotFoundIfBad(DecodeVolumeId(vid), "volume " + vid));
    if (from.cluster_id != id.cluster_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("volume ", vid, " is in another cluster than the new volume"));
    }
    return store.CloneFromImage(from, id, want);
  }
  return absl::InvalidArgumentError("volume_content_source names neither a snapshot nor a volume");
}

absl::Status ControllerOps::CreateSnapshot(const csi::v1::CreateSnapshotRequest& req,
                                           csi::v1::CreateSnapshotResponse* resp) {
  RETURN_IF_ERROR(RequireNonEmpty(req.name(), "name"));
  RETURN_IF_ERROR(RequireNonEmpty(req.source_volume_id(), "source_volume_id"));
  ASSIGN_OR_RETURN(auto resolved, Resolve(req.source_volume_id(), req.secrets()));
  auto& [store, source] = resolved;
  const size_t used = EncodeVolumeId(source).size() + 1;  // "<volume id>@"
  const std::string name = ImageNameFor(req.name(), used < kMaxIdLength ? kMaxIdLength - used : 0);
  RETURN_IF_ERROR(locks_->TryLockImage(source, req.name()));
  ImageLockGuard guard(locks_, source);
  ASSIGN_OR_RETURN(SnapshotInfo info, store->CreateSnapshot(source, name));
  Logger("controller")
      ->info("snapshot {} of {} for name {}", EncodeSnapshotId(info.id), req.source_volume_id(),
             req.name());
  FillSnapshot(info, resp->mutable_snapshot());
  return absl::OkStatus();
}

absl::Status ControllerOps::DeleteSnapshot(const csi::v1::DeleteSnapshotRequest& req) {
  RETURN_IF_ERROR(RequireNonEmpty(req.snapshot_id(), "snapshot_id"));
  absl::StatusOr<SnapshotId> id = DecodeSnapshotId(req.snapshot_id());
  if (!id.ok()) return absl::OkStatus();  // never one of ours, so gone
  absl::StatusOr<ImageStore*> store =
      stores_->For(id->image.cluster_id, CredentialsOf(req.secrets()));
  if (absl::IsNotFound(store.status())) return absl::OkStatus();
  RETURN_IF_ERROR(store.status());
  RETURN_IF_ERROR(locks_->TryLockImage(id->image, req.snapshot_id()));
  ImageLockGuard guard(locks_, id->image);
  RETURN_IF_ERROR((*store)->DeleteSnapshot(*id));
  Logger("controller")->info("deleted snapshot {}", req.snapshot_id());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SnapshotInfo>> ControllerOps::SnapshotsFor(
    const csi::v1::ListSnapshotsRequest& req) {
  const Credentials creds = CredentialsOf(req.secrets());
  std::optional<ImageId> source;
  std::optional<SnapshotId> only;
  if (!req.snapshot_id().empty()) {
    absl::StatusOr<SnapshotId> id = DecodeSnapshotId(req.snapshot_id());
    if (!id.ok()) return std::vector<SnapshotInfo>();
    only = *id;
    source = id->image;
  } else if (!req.source_volume_id().empty()) {
    absl::StatusOr<ImageId> id = DecodeVolumeId(req.source_volume_id());
    if (!id.ok()) return std::vector<SnapshotInfo>();
    source = *id;
  }
  std::vector<SnapshotInfo> all;
  const std::vector<std::string> clusters =
      source ? std::vector<std::string>{source->cluster_id} : stores_->ClusterIds();
  for (const std::string& cluster : clusters) {
    absl::StatusOr<ImageStore*> store = stores_->For(cluster, creds);
    if (absl::IsNotFound(store.status()) && source) return all;
    RETURN_IF_ERROR(store.status());
    ASSIGN_OR_RETURN(std::vector<SnapshotInfo> some, (*store)->ListSnapshots(source));
    for (SnapshotInfo& s : some) {
      if (!only || s.id == *only) all.push_back(std::move(s));
    }
  }
  std::sort(all.begin(), all.end(), [](const SnapshotInfo& a, const SnapshotInfo& b) {
    return EncodeSnapshotId(a.id) < EncodeSnapshotId(b.id);
  });
  return all;
}

absl::Status ControllerOps::ListSnapshots(const csi::v1::ListSnapshotsRequest& req,
                                          csi::v1::ListSnapshotsResponse* resp) {
  if (req.max_entries() < 0) return absl::InvalidArgumentError("max_entries must not be negative");
  ASSIGN_OR_RETURN(std::vector<SnapshotInfo> all, SnapshotsFor(req));
  size_t start = 0;
  if (!req.starting_token().empty() &&
      (!absl::SimpleAtoi(req.starting_token(), &start) || start > all.size())) {
    return absl::AbortedError(
        absl::StrCat("starting_token '", req.starting_token(), "' is not valid"));
  }
  size_t end = all.size();
  if (req.max_entries() > 0) end = std::min(end, start + static_cast<size_t>(req.max_entries()));
  for (size_t i = start; i < end; ++i) {
    FillSnapshot(all[i], resp->add_entries()->mutable_snapshot());
  }
  if (end < all.size()) resp->set_next_token(std::to_string(end));
  return absl::OkStatus();
}

grpc::Status ControllerService::CreateSnapshot(grpc::ServerContext*,
                                               const csi::v1::CreateSnapshotRequest* req,
                                               csi::v1::CreateSnapshotResponse* resp) {
  return RunRpc(tracker_, "CreateSnapshot", *req, [&] { return ops_->CreateSnapshot(*req, resp); });
}

grpc::Status ControllerService::DeleteSnapshot(grpc::ServerContext*,
                                               const csi::v1::DeleteSnapshotRequest* req,
                                               csi::v1::DeleteSnapshotResponse*) {
  return RunRpc(tracker_, "DeleteSnapshot", *req, [&] { return ops_->DeleteSnapshot(*req); });
}

grpc::Status ControllerService::ListSnapshots(grpc::ServerContext*,
                                              const csi::v1::ListSnapshotsRequest* req,
                                              csi::v1::ListSnapshotsResponse* resp) {
  return RunRpc(tracker_, "ListSnapshots", *req, [&] { return ops_->ListSnapshots(*req, resp); });
}

}  // namespace rbdcsi
