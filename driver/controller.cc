#include "driver/controller.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/hash.h"
#include "base/logging.h"
#include "base/status.h"
#include "driver/rpc.h"
#include "driver/validation.h"

namespace rbdcsi {
namespace {

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
  ASSIGN_OR_RETURN(uint64_t size, LoopImageStore::RoundSize(want));
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

}  // namespace

absl::StatusOr<ImageSpec> ControllerOps::ImageOfVolumeId(const std::string& volume_id) {
  const size_t slash = volume_id.find('/');
  if (slash == std::string::npos) {
    return absl::NotFoundError(absl::StrCat("volume ", volume_id, " does not exist"));
  }
  ImageSpec spec{volume_id.substr(0, slash), volume_id.substr(slash + 1)};
  if (!LoopImageStore::ValidateSpec(spec).ok()) {
    return absl::NotFoundError(absl::StrCat("volume ", volume_id, " does not exist"));
  }
  return spec;
}

std::string ControllerOps::ImageNameFor(const std::string& volume_name) {
  if (volume_name.size() <= 100 && LoopImageStore::ValidateName(volume_name).ok()) {
    return volume_name;
  }
  std::string prefix;
  for (char c : volume_name.substr(0, 40)) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') prefix.push_back(c);
  }
  return absl::StrFormat("v-%s-%016x", prefix, StableHash64(volume_name));
}

void ControllerOps::FillVolume(const ImageSpec& spec, uint64_t size,
                               csi::v1::Volume* volume) const {
  volume->set_volume_id(spec.ToString());
  volume->set_capacity_bytes(static_cast<int64_t>(size));
  auto& ctx = *volume->mutable_volume_context();
  ctx["mapper"] = "loop";
  ctx["pool"] = spec.pool;
  ctx["image"] = spec.image;
}

absl::Status ControllerOps::CreateVolume(const csi::v1::CreateVolumeRequest& req,
                                         csi::v1::CreateVolumeResponse* resp) {
  RETURN_IF_ERROR(RequireNonEmpty(req.name(), "name"));
  if (req.volume_capabilities().empty()) {
    return absl::InvalidArgumentError("volume_capabilities is required");
  }
  for (const auto& cap : req.volume_capabilities()) RETURN_IF_ERROR(ParseCapability(cap).status());
  if (req.has_volume_content_source()) {
    return absl::InvalidArgumentError(
        "volume_content_source is not supported: this controller creates empty volumes");
  }
  ImageSpec spec{config_.default_pool, ImageNameFor(req.name())};
  for (const auto& [key, value] : req.parameters()) {
    if (key == "pool") {
      spec.pool = value;
    } else if (key == "mapper") {
      if (value != "loop") {
        return absl::InvalidArgumentError(absl::StrCat(
            "parameter mapper=", value, ": this controller provisions loop volumes only"));
      }
    } else if (key.rfind("csi.storage.k8s.io/", 0) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown parameter '", key, "': use pool or mapper"));
    }
  }
  RETURN_IF_ERROR(Annotate(LoopImageStore::ValidateSpec(spec), "parameter pool"));
  ASSIGN_OR_RETURN(uint64_t size, SizeFor(req.capacity_range(), config_.default_size));

  RETURN_IF_ERROR(locks_->TryLock(spec.ToString()));
  VolumeLockGuard guard(locks_, spec.ToString());
  absl::StatusOr<uint64_t> existing = images_->Size(spec);
  if (existing.ok()) {
    if (!SizeFits(*existing, req.capacity_range())) {
      return absl::AlreadyExistsError(absl::StrCat("volume ", req.name(), " already exists with ",
                                                   *existing,
                                                   " bytes, outside the requested range"));
    }
    FillVolume(spec, *existing, resp->mutable_volume());
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  RETURN_IF_ERROR(images_->Create(spec, size));
  Logger("controller")
      ->info("created volume {} ({} bytes) for name {}", spec.ToString(), size, req.name());
  FillVolume(spec, size, resp->mutable_volume());
  return absl::OkStatus();
}

absl::Status ControllerOps::DeleteVolume(const csi::v1::DeleteVolumeRequest& req) {
  RETURN_IF_ERROR(RequireNonEmpty(req.volume_id(), "volume_id"));
  absl::StatusOr<ImageSpec> spec = ImageOfVolumeId(req.volume_id());
  if (!spec.ok()) return absl::OkStatus();  // never ours, so already gone
  RETURN_IF_ERROR(locks_->TryLock(spec->ToString()));
  VolumeLockGuard guard(locks_, spec->ToString());
  ASSIGN_OR_RETURN(std::vector<MappedDevice> mapped, mapper_->List());
  for (const MappedDevice& d : mapped) {
    if (d.image == *spec) {
      return absl::FailedPreconditionError(absl::StrCat(
          "volume ", req.volume_id(), " is in use: mapped at ", d.path, " on this node"));
    }
  }
  RETURN_IF_ERROR(images_->Delete(*spec));
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
  ASSIGN_OR_RETURN(ImageSpec spec, ImageOfVolumeId(req.volume_id()));
  RETURN_IF_ERROR(images_->Size(spec).status());
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
  ASSIGN_OR_RETURN(std::vector<ImageSpec> all, images_->List());
  std::sort(all.begin(), all.end(),
            [](const ImageSpec& a, const ImageSpec& b) { return a.ToString() < b.ToString(); });
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
    absl::StatusOr<uint64_t> size = images_->Size(all[i]);
    if (!size.ok()) continue;  // deleted meanwhile
    FillVolume(all[i], *size, resp->add_entries()->mutable_volume());
  }
  if (end < all.size()) resp->set_next_token(std::to_string(end));
  return absl::OkStatus();
}

absl::Status ControllerOps::GetCapacity(const csi::v1::GetCapacityRequest&,
                                        csi::v1::GetCapacityResponse* resp) {
  struct statvfs vfs {};
  if (statvfs(images_->data_dir().c_str(), &vfs) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("statfs of ", images_->data_dir()));
  }
  resp->set_available_capacity(static_cast<int64_t>(vfs.f_bavail * vfs.f_frsize));
  return absl::OkStatus();
}

absl::Status ControllerOps::ExpandVolume(const csi::v1::ControllerExpandVolumeRequest& req,
                                         csi::v1::ControllerExpandVolumeResponse* resp) {
  RETURN_IF_ERROR(RequireNonEmpty(req.volume_id(), "volume_id"));
  if (!req.has_capacity_range()) return absl::InvalidArgumentError("capacity_range is required");
  ASSIGN_OR_RETURN(ImageSpec spec, ImageOfVolumeId(req.volume_id()));
  RETURN_IF_ERROR(locks_->TryLock(spec.ToString()));
  VolumeLockGuard guard(locks_, spec.ToString());
  ASSIGN_OR_RETURN(uint64_t current, images_->Size(spec));
  ASSIGN_OR_RETURN(uint64_t wanted, SizeFor(req.capacity_range(), current));
  if (wanted > current) RETURN_IF_ERROR(images_->Resize(spec, wanted));
  resp->set_capacity_bytes(static_cast<int64_t>(std::max(wanted, current)));
  resp->set_node_expansion_required(!req.volume_capability().has_block());
  return absl::OkStatus();
}

void ControllerOps::GetCapabilities(csi::v1::ControllerGetCapabilitiesResponse* resp) {
  using Rpc = csi::v1::ControllerServiceCapability::RPC;
  for (auto type : {Rpc::CREATE_DELETE_VOLUME, Rpc::LIST_VOLUMES, Rpc::GET_CAPACITY,
                    Rpc::EXPAND_VOLUME, Rpc::SINGLE_NODE_MULTI_WRITER}) {
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
