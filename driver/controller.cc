#include "driver/controller.h"

#include <algorithm>
#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/hash.h"
#include "base/logging.h"
#include "base/status.h"
#include "driver/rpc.h"
#include "driver/validation.h"

namespace rbdcsi {
namespace {

using Params = google::protobuf::Map<std::string, std::string>;

// The size to create for a capacity range: at least `required`, rounded to the sector
// size, and not above `limit`.
absl::StatusOr<uint64_t> SizeFor(const csi::v1::CapacityRange& range, uint64_t default_size) {
  const int64_t required = range.required_bytes();
  const int64_t limit = range.limit_bytes();
  if (required < 0 || limit < 0) {
    return absl::InvalidArgumentError("capacity_range bytes must not be negative");
  }
  if (limit > 0 && required > limit) {
    return absl::OutOfRangeError(
        absl::StrCat("capacity_range: required_bytes ", required, " exceeds limit_bytes ", limit));
  }
  uint64_t want = required > 0 ? static_cast<uint64_t>(required) : default_size;
  if (limit > 0) want = std::min<uint64_t>(want, static_cast<uint64_t>(limit));
  if (want > kMaxImageSize) {
    return absl::OutOfRangeError(absl::StrCat("capacity_range: ", want,
                                              " bytes is above the largest volume, ", kMaxImageSize,
                                              " bytes (1 EiB)"));
  }
  const uint64_t size = (want + kImageSectorSize - 1) / kImageSectorSize * kImageSectorSize;
  if (limit > 0 && size > static_cast<uint64_t>(limit)) {
    return absl::OutOfRangeError(absl::StrCat("capacity_range: limit_bytes ", limit,
                                              " is below the smallest volume that fits"));
  }
  return size;
}

bool SizeFits(uint64_t size, const csi::v1::CapacityRange& range) {
  return size >= static_cast<uint64_t>(std::max<int64_t>(range.required_bytes(), 0)) &&
         (range.limit_bytes() <= 0 || size <= static_cast<uint64_t>(range.limit_bytes()));
}

// What CreateVolume's parameters ask for.
struct CreateParams {
  ImageId id;  // without the image name
  std::string mapper;
  CreateOptions options;
};

absl::StatusOr<CreateParams> ParseCreateParams(const Params& params,
                                               const ControllerConfig& config) {
  CreateParams out;
  out.id.cluster_id = config.default_cluster;
  out.id.pool = config.default_pool;
  for (const auto& [key, value] : params) {
    if (key == "pool") {
      out.id.pool = value;
    } else if (key == "clusterID") {
      out.id.cluster_id = value;
    } else if (key == "radosNamespace") {
      out.id.rados_namespace = value;
    } else if (key == "dataPool") {
      out.options.data_pool = value;
    } else if (key == "imageFeatures") {
      out.options.features = absl::StrSplit(value, ',', absl::SkipEmpty());
    } else if (key == "mapper") {
      if (std::find(config.mappers.begin(), config.mappers.end(), value) == config.mappers.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "parameter mapper=", value, ": this controller's volumes can be mapped by ",
            absl::StrJoin(config.mappers, ", ")));
      }
      out.mapper = value;
    } else if (key.rfind("csi.storage.k8s.io/", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown parameter '", key,
          "': use pool, clusterID, radosNamespace, dataPool, imageFeatures or mapper"));
    }
  }
  if (out.mapper.empty()) out.mapper = config.DefaultMapperFor(out.id);
  return out;
}

// The store for `cluster_id`; an unknown cluster is the caller's mistake.
absl::StatusOr<ImageStore*> StoreFor(ImageStoreProvider& stores, const std::string& cluster_id,
                                     const Params& secrets) {
  absl::StatusOr<ImageStore*> store = stores.For(cluster_id, CredentialsOf(secrets));
  if (absl::IsNotFound(store.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter clusterID: ", store.status().message()));
  }
  return store;
}

}  // namespace

Credentials CredentialsOf(const Params& secrets) {
  Credentials c;
  if (auto it = secrets.find("userID"); it != secrets.end()) c.user = it->second;
  if (auto it = secrets.find("userKey"); it != secrets.end()) c.key = it->second;
  return c;
}

std::string ControllerOps::ImageNameFor(const std::string& volume_name, size_t max_length) {
  if (volume_name.size() <= std::min<size_t>(100, max_length) &&
      ValidateImageName(volume_name, "name").ok()) {
    return volume_name;
  }
  // "v-" + prefix + "-" + 16 hex digits.
  const size_t room = max_length > 19 ? std::min<size_t>(40, max_length - 19) : 0;
  std::string prefix;
  for (char c : volume_name.substr(0, 40)) {
    if (prefix.size() < room &&
        (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
      prefix.push_back(c);
    }
  }
  return absl::StrFormat("v-%s-%016x", prefix, StableHash64(volume_name));
}

void ControllerOps::FillVolume(const ImageInfo& info, const std::string& mapper,
                               csi::v1::Volume* volume) const {
  volume->set_volume_id(EncodeVolumeId(info.id));
  volume->set_capacity_bytes(static_cast<int64_t>(info.size_bytes));
  auto& ctx = *volume->mutable_volume_context();
  if (!mapper.empty()) ctx["mapper"] = mapper;
  if (!info.id.cluster_id.empty()) ctx["clusterID"] = info.id.cluster_id;
  ctx["pool"] = info.id.pool;
  if (!info.id.rados_namespace.empty()) ctx["radosNamespace"] = info.id.rados_namespace;
  ctx["image"] = info.id.image;
}

absl::StatusOr<std::pair<ImageStore*, ImageId>> ControllerOps::Resolve(const std::string& volume_id,
                                                                       const Params& secrets) {
  ASSIGN_OR_RETURN(ImageId id, DecodeVolumeId(volume_id));
  absl::StatusOr<ImageStore*> store = stores_->For(id.cluster_id, CredentialsOf(secrets));
  if (absl::IsNotFound(store.status())) {
    return absl::NotFoundError(
        absl::StrCat("volume ", volume_id, " does not exist (", store.status().message(), ")"));
  }
  RETURN_IF_ERROR(store.status());
  return std::make_pair(*store, std::move(id));
}

absl::Status ControllerOps::CreateVolume(const csi::v1::CreateVolumeRequest& req,
                                         csi::v1::CreateVolumeResponse* resp) {
  RETURN_IF_ERROR(RequireNonEmpty(req.name(), "name"));
  if (req.volume_capabilities().empty()) {
    return absl::InvalidArgumentError("volume_capabilities is required");
  }
  for (const auto& cap : req.volume_capabilities()) RETURN_IF_ERROR(ParseCapability(cap).status());
  ASSIGN_OR_RETURN(CreateParams params, ParseCreateParams(req.parameters(), config_));
  ASSIGN_OR_RETURN(const auto qos, ParseQosParameters(req.mutable_parameters()));
  ImageId id = params.id;
  const size_t used = EncodeVolumeId(id).size();  // everything but the image name
  id.image = ImageNameFor(req.name(), used < kMaxIdLength ? kMaxIdLength - used : 0);
  RETURN_IF_ERROR(Annotate(ValidateImageId(id), "parameters"));
  ASSIGN_OR_RETURN(uint64_t size, SizeFor(req.capacity_range(), config_.default_size));
  ASSIGN_OR_RETURN(ImageStore * store, StoreFor(*stores_, id.cluster_id, req.secrets()));

  RETURN_IF_ERROR(locks_->TryLockImage(id, req.name()));
  ImageLockGuard guard(locks_, id);
  absl::StatusOr<ImageInfo> existing = store->Info(id);
  if (existing.ok()) {
    if (!SizeFits(existing->size_bytes, req.capacity_range())) {
      return absl::AlreadyExistsError(absl::StrCat("volume ", req.name(), " already exists with ",
                                                   existing->size_bytes,
                                                   " bytes, outside the requested range"));
    }
    // A store that records where an image came from must agree with the request.
    const auto& src = req.volume_content_source();
    const bool other_source =
        (existing->source_snapshot &&
         (!src.has_snapshot() ||
          EncodeSnapshotId(*existing->source_snapshot) != src.snapshot().snapshot_id())) ||
        (existing->source_image && (!src.has_volume() || EncodeVolumeId(*existing->source_image) !=
                                                             src.volume().volume_id()));
    if (other_source) {
      return absl::AlreadyExistsError(
          absl::StrCat("volume ", req.name(), " already exists with another content source"));
    }
    FillVolume(*existing, params.mapper, resp->mutable_volume());
    *resp->mutable_volume()->mutable_content_source() = req.volume_content_source();
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  ASSIGN_OR_RETURN(ImageInfo created, req.has_volume_content_source()
                                          ? CreateFromSource(req, *store, id, size)
                                          : store->Create(id, size, params.options));
  if (!qos.empty()) RETURN_IF_ERROR(store->SetQos(id, qos));
  Logger("controller")
      ->info("created volume {} ({} bytes) for name {}", id.ToString(), created.size_bytes,
             req.name());
  FillVolume(created, params.mapper, resp->mutable_volume());
  *resp->mutable_volume()->mutable_content_source() = req.volume_content_source();
  return absl::OkStatus();
}

absl::Status ControllerOps::DeleteVolume(const csi::v1::DeleteVolumeRequest& req) {
  RETURN_IF_ERROR(RequireNonEmpty(req.volume_id(), "volume_id"));
  auto resolved = Resolve(req.volume_id(), req.secrets());
  if (absl::IsNotFound(resolved.status())) return absl::OkStatus();  // never ours: gone
  RETURN_IF_ERROR(resolved.status());
  auto& [store, id] = *resolved;
  RETURN_IF_ERROR(locks_->TryLockImage(id, req.volume_id()));
  ImageLockGuard guard(locks_, id);
  RETURN_IF_ERROR(store->Delete(id));
  Logger("controller")->info("deleted volume {}", req.volume_id());
  return absl::OkStatus();
}

absl::Status ControllerOps::ValidateVolumeCapabilities(
    const csi::v1::ValidateVolumeCapabilitiesRequest& req,
    csi::v1::ValidateVolumeCapabilitiesResponse* resp) {
  RETURN_IF_ERROR(RequireNonEmpty(req.volume_id(), "volume_id"));
  if (req.volume_capabilities().empty()) {
    return absl::InvalidArgumentError("volume_capabilities is required");
  }
  ASSIGN_OR_RETURN(auto resolved, Resolve(req.volume_id(), req.secrets()));
  RETURN_IF_ERROR(resolved.first->Info(resolved.second).status());
  for (const auto& cap : req.volume_capabilities()) {
    absl::Status st = ParseCapability(cap).status();
    if (!st.ok()) {
      resp->set_message(std::string(st.message()));
      return absl::OkStatus();
    }
  }
  auto* confirmed = resp->mutable_confirmed();
  *confirmed->mutable_volume_context() = req.volume_context();
  *confirmed->mutable_volume_capabilities() = req.volume_capabilities();
  *confirmed->mutable_parameters() = req.parameters();
  return absl::OkStatus();
}

absl::Status ControllerOps::ListVolumes(const csi::v1::ListVolumesRequest& req,
                                        csi::v1::ListVolumesResponse* resp) {
  if (req.max_entries() < 0) {
    return absl::InvalidArgumentError("max_entries must not be negative");
  }
  // Every cluster's images, with the controller's own credentials (the request has none).
  std::vector<ImageInfo> all;
  for (const std::string& cluster : stores_->ClusterIds()) {
    ASSIGN_OR_RETURN(ImageStore * store, stores_->For(cluster, Credentials{}));
    ASSIGN_OR_RETURN(std::vector<ImageInfo> some, store->List(""));
    all.insert(all.end(), some.begin(), some.end());
  }
  std::sort(all.begin(), all.end(), [](const ImageInfo& a, const ImageInfo& b) {
    return EncodeVolumeId(a.id) < EncodeVolumeId(b.id);
  });
  size_t start = 0;
  if (!req.starting_token().empty()) {
    if (!absl::SimpleAtoi(req.starting_token(), &start) || start > all.size()) {
      return absl::AbortedError(
          absl::StrCat("starting_token '", req.starting_token(), "' is not valid"));
    }
  }
  size_t end = all.size();
  if (req.max_entries() > 0) end = std::min(end, start + static_cast<size_t>(req.max_entries()));
  for (size_t i = start; i < end; ++i) {
    FillVolume(all[i], config_.DefaultMapperFor(all[i].id), resp->add_entries()->mutable_volume());
  }
  if (end < all.size()) resp->set_next_token(std::to_string(end));
  return absl::OkStatus();
}

absl::Status ControllerOps::GetCapacity(const csi::v1::GetCapacityRequest& req,
                                        csi::v1::GetCapacityResponse* resp) {
  ASSIGN_OR_RETURN(CreateParams params, ParseCreateParams(req.parameters(), config_));
  ASSIGN_OR_RETURN(ImageStore * store, StoreFor(*stores_, params.id.cluster_id, {}));
  ASSIGN_OR_RETURN(uint64_t available, store->Capacity(params.id.pool));
  resp->set_available_capacity(static_cast<int64_t>(available));
  return absl::OkStatus();
}

absl::Status ControllerOps::ExpandVolume(const csi::v1::ControllerExpandVolumeRequest& req,
                                         csi::v1::ControllerExpandVolumeResponse* resp) {
  RETURN_IF_ERROR(RequireNonEmpty(req.volume_id(), "volume_id"));
  if (!req.has_capacity_range()) return absl::InvalidArgumentError("capacity_range is required");
  ASSIGN_OR_RETURN(auto resolved, Resolve(req.volume_id(), req.secrets()));
  auto& [store, id] = resolved;
  RETURN_IF_ERROR(locks_->TryLockImage(id, req.volume_id()));
  ImageLockGuard guard(locks_, id);
  ASSIGN_OR_RETURN(ImageInfo current, store->Info(id));
  ASSIGN_OR_RETURN(uint64_t wanted, SizeFor(req.capacity_range(), current.size_bytes));
  if (wanted > current.size_bytes) RETURN_IF_ERROR(store->Resize(id, wanted));
  resp->set_capacity_bytes(static_cast<int64_t>(std::max(wanted, current.size_bytes)));
  resp->set_node_expansion_required(!req.volume_capability().has_block());
  return absl::OkStatus();
}

void ControllerOps::GetCapabilities(csi::v1::ControllerGetCapabilitiesResponse* resp) {
  using Rpc = csi::v1::ControllerServiceCapability::RPC;
  for (auto type : {Rpc::CREATE_DELETE_VOLUME, Rpc::LIST_VOLUMES, Rpc::GET_CAPACITY,
                    Rpc::EXPAND_VOLUME, Rpc::SINGLE_NODE_MULTI_WRITER, Rpc::CREATE_DELETE_SNAPSHOT,
                    Rpc::LIST_SNAPSHOTS, Rpc::CLONE_VOLUME, Rpc::MODIFY_VOLUME}) {
    resp->add_capabilities()->mutable_rpc()->set_type(type);
  }
}

grpc::Status ControllerService::CreateVolume(grpc::ServerContext*,
                                             const csi::v1::CreateVolumeRequest* req,
                                             csi::v1::CreateVolumeResponse* resp) {
  return RunRpc(tracker_, "CreateVolume", *req, [&] { return ops_->CreateVolume(*req, resp); });
}

grpc::Status ControllerService::DeleteVolume(grpc::ServerContext*,
                                             const csi::v1::DeleteVolumeRequest* req,
                                             csi::v1::DeleteVolumeResponse*) {
  return RunRpc(tracker_, "DeleteVolume", *req, [&] { return ops_->DeleteVolume(*req); });
}

grpc::Status ControllerService::ValidateVolumeCapabilities(
    grpc::ServerContext*, const csi::v1::ValidateVolumeCapabilitiesRequest* req,
    csi::v1::ValidateVolumeCapabilitiesResponse* resp) {
  return RunRpc(tracker_, "ValidateVolumeCapabilities", *req,
                [&] { return ops_->ValidateVolumeCapabilities(*req, resp); });
}

grpc::Status ControllerService::ListVolumes(grpc::ServerContext*,
                                            const csi::v1::ListVolumesRequest* req,
                                            csi::v1::ListVolumesResponse* resp) {
  return RunRpc(tracker_, "ListVolumes", *req, [&] { return ops_->ListVolumes(*req, resp); });
}

grpc::Status ControllerService::GetCapacity(grpc::ServerContext*,
                                            const csi::v1::GetCapacityRequest* req,
                                            csi::v1::GetCapacityResponse* resp) {
  return RunRpc(tracker_, "GetCapacity", *req, [&] { return ops_->GetCapacity(*req, resp); });
}

grpc::Status ControllerService::ControllerGetCapabilities(
    grpc::ServerContext*, const csi::v1::ControllerGetCapabilitiesRequest* req,
    csi::v1::ControllerGetCapabilitiesResponse* resp) {
  return RunRpc(tracker_, "ControllerGetCapabilities", *req, [&] {
    ControllerOps::GetCapabilities(resp);
    return absl::OkStatus();
  });
}

grpc::Status ControllerService::ControllerExpandVolume(
    grpc::ServerContext*, const csi::v1::ControllerExpandVolumeRequest* req,
    csi::v1::ControllerExpandVolumeResponse* resp) {
  return RunRpc(tracker_, "ControllerExpandVolume", *req,
                [&] { return ops_->ExpandVolume(*req, resp); });
}

}  // namespace rbdcsi
