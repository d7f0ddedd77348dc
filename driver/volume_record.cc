#include "driver/volume_record.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/fd.h"
#include "base/file_util.h"
#include "base/hash.h"
#include "base/logging.h"
#include "base/status.h"
#include "mounter/mountinfo.h"
#include "nlohmann/json.hpp"

namespace rbdcsi {
namespace {

constexpr int kFormatVersion = 1;
constexpr size_t kMaxFileStem = 200;
constexpr char kSuffix[] = ".json";
constexpr char kTempInfix[] = ".tmp.";

constexpr std::pair<StageStep, std::string_view> kStepNames[] = {
    {StageStep::kMapping, "mapping"},
    {StageStep::kMapped, "mapped"},
    {StageStep::kStaged, "staged"},
    {StageStep::kUnmounted, "unmounted"},
};

std::optional<StageStep> ParseStep(std::string_view name) {
  for (const auto& [step, step_name] : kStepNames) {
    if (step_name == name) return step;
  }
  return std::nullopt;
}

}  // namespace

std::string_view StageStepName(StageStep step) {
  for (const auto& [s, name] : kStepNames) {
    if (s == step) return name;
  }
  return "unknown";
}

std::string EncodeRecord(const VolumeRecord& r) {
  nlohmann::json j = {
      {"version", kFormatVersion},
      {"volume_id", r.volume_id},
      {"mapper", r.mapper},
      {"cluster_id", r.cluster_id},
      {"pool", r.image.pool},
      {"rados_namespace", r.image.rados_namespace},
      {"image", r.image.image},
      {"monitors", r.monitors},
      {"user", r.user},
      {"device", {{"path", r.device.path}, {"major", r.device.major}, {"minor", r.device.minor}}},
      {"staging_path", r.staging_path},
      {"access_type", r.block ? "block" : "mount"},
      {"fs_type", r.fs_type},
      {"mount_flags", r.mount_flags},
      {"read_only", r.read_only},
      {"staging_peer_group", r.staging_peer_group},
      {"staging_mount_id", r.staging_mount_id},
      {"step", std::string(StageStepName(r.step))},
  };
  if (r.publishes_known) j["published"] = r.published;
  return j.dump(2) + "\n";
}

absl::StatusOr<VolumeRecord> DecodeRecord(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("volume record is not a JSON object");
  }
  try {
    if (j.at("version").get<int>() != kFormatVersion) {
      return absl::InvalidArgumentError(
          absl::StrCat("volume record has unknown format version ", j.at("version").dump()));
    }
    VolumeRecord r;
    r.volume_id = j.at("volume_id").get<std::string>();
    r.mapper = j.at("mapper").get<std::string>();
    r.cluster_id = j.value("cluster_id", "");
    r.image.pool = j.at("pool").get<std::string>();
    r.image.rados_namespace = j.value("rados_namespace", "");
    r.image.image = j.at("image").get<std::string>();
    r.monitors = j.value("monitors", "");
    r.user = j.value("user", "");
    const auto& dev = j.at("device");
    r.device.path = dev.at("path").get<std::string>();
    r.device.major = dev.at("major").get<unsigned>();
    r.device.minor = dev.at("minor").get<unsigned>();
    r.device.image = r.image;
    r.staging_path = j.at("staging_path").get<std::string>();
    const std::string access = j.at("access_type").get<std::string>();
    if (access != "block" && access != "mount") {
      return absl::InvalidArgumentError(
          absl::StrCat("volume record has unknown access_type '", access, "'"));
    }
    r.block = access == "block";
    r.fs_type = j.value("fs_type", "");
    r.mount_flags = j.value("mount_flags", std::vector<std::string>{});
    r.read_only = j.value("read_only", false);
    r.staging_peer_group = j.value("staging_peer_group", 0);
    r.staging_mount_id = j.value("staging_mount_id", 0);
    r.publishes_known = j.contains("published");
    r.published = j.value("published", std::vector<std::string>{});
    const std::string step = j.at("step").get<std::string>();
    std::optional<StageStep> parsed = ParseStep(step);
    if (!parsed) {
      return absl::InvalidArgumentError(
          absl::StrCat("volume record has unknown step '", step, "'"));
    }
    r.step = *parsed;
    if (r.volume_id.empty()) return absl::InvalidArgumentError("volume record has no volume_id");
    return r;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("volume record is incomplete: ", e.what()));
  }
}

std::string RecordStore::FileNameFor(std::string_view volume_id) {
  std::string stem;
  for (size_t i = 0; i < volume_id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(volume_id[i]);
    const bool safe = std::isalnum(c) || c == '-' || c == '_' || (c == '.' && i > 0);
    if (safe) {
      stem.push_back(static_cast<char>(c));
    } else {
      stem += absl::StrFormat("%%%02X", c);
    }
  }
  if (stem.size() > kMaxFileStem) {
    stem = absl::StrFormat("%s~%016x", stem.substr(0, kMaxFileStem - 17), StableHash64(volume_id));
  }
  return stem + kSuffix;
}

struct RecordStore::Index {
  std::mutex mu;
  std::optional<std::map<std::string, VolumeRecord>> records;  // empty until the first List()
};

RecordStore::RecordStore(std::string dir, Listing listing)
    : dir_(std::move(dir)),
      index_(listing == Listing::kOwned ? std::make_shared<Index>() : nullptr) {}

std::string RecordStore::PathFor(std::string_view volume_id) const {
  return absl::StrCat(dir_, "/", FileNameFor(volume_id));
}

absl::StatusOr<std::optional<VolumeRecord>> RecordStore::Load(std::string_view volume_id) const {
  const std::string path = PathFor(volume_id);
  absl::StatusOr<std::string> text = ReadFileUpTo(path, kMaxRecordBytes);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return std::nullopt;
    if (absl::IsOutOfRange(text.status())) {
      return absl::DataLossError(absl::StrCat("volume record ", path, " is larger than ",
                                              kMaxRecordBytes,
                                              " bytes, so it is not a record this plugin wrote; "
                                              "move it aside after checking the node by hand"));
    }
    return text.status();
  }
  absl::StatusOr<VolumeRecord> record = DecodeRecord(*text);
  if (!record.ok()) {
    return absl::DataLossError(absl::StrCat("volume record ", path, " is damaged (",
                                            record.status().message(),
                                            "); move it aside after checking the node by hand"));
  }
  if (record->volume_id != volume_id) {
    return absl::DataLossError(absl::StrCat("volume record ", path, " belongs to volume '",
                                            record->volume_id, "', not '", AsAbsl(volume_id), "'"));
  }
  return std::optional<VolumeRecord>(*std::move(record));
}

absl::Status RecordStore::Save(const VolumeRecord& record) const {
  // ReplaceFile's temporary names contain kTempInfix: RemoveStaleTemporaries finds a crash's.
  RETURN_IF_ERROR(ReplaceFile(PathFor(record.volume_id), EncodeRecord(record)));
  if (index_ != nullptr) {
    std::lock_guard<std::mutex> lock(index_->mu);
    if (index_->records) (*index_->records)[record.volume_id] = record;
  }
  return FsyncDir(dir_);
}

absl::Status RecordStore::Delete(std::string_view volume_id) const {
  const std::string path = PathFor(volume_id);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, absl::StrCat("removing ", path));
  }
  if (index_ != nullptr) {
    std::lock_guard<std::mutex> lock(index_->mu);
    if (index_->records) index_->records->erase(std::string(volume_id));
  }
  // The record is gone either way; a failed directory sync only makes that less durable.
  FsyncDir(dir_).IgnoreError();
  return absl::OkStatus();
}

int RecordStore::RemoveStaleTemporaries() const {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find(kTempInfix) == std::string::npos) continue;
    if (unlink(entry.path().c_str()) == 0) ++removed;
  }
  return removed;
}

absl::StatusOr<std::vector<VolumeRecord>> RecordStore::List() const {
  if (index_ == nullptr) return ReadAll();
  // Held while the files are read, so that no Save or Delete slips between the read and the
  // index.
  std::lock_guard<std::mutex> lock(index_->mu);
  if (!index_->records) {
    ASSIGN_OR_RETURN(std::vector<VolumeRecord> all, ReadAll());
    index_->records.emplace();
    for (VolumeRecord& r : all) {
      std::string id = r.volume_id;
      index_->records->emplace(std::move(id), std::move(r));
    }
  }
  std::vector<VolumeRecord> out;
  out.reserve(index_->records->size());
  for (const auto& [id, record] : *index_->records) out.push_back(record);
  return out;
}

absl::StatusOr<std::vector<VolumeRecord>> RecordStore::ReadAll() const {
  std::vector<VolumeRecord> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::EndsWith(name, kSuffix)) continue;
    absl::StatusOr<std::string> text = ReadFileUpTo(entry.path().string(), kMaxRecordBytes);
    if (!text.ok()) {
      Logger("driver")->warn("skipping volume record {}: {}", entry.path().string(),
                             text.status().message());
      continue;
    }
    absl::StatusOr<VolumeRecord> record = DecodeRecord(*text);
    if (!record.ok()) {
      Logger("driver")->warn("skipping damaged volume record {}: {}", entry.path().string(),
                             record.status().message());
      continue;
    }
    out.push_back(*std::move(record));
  }
  if (ec) return absl::InternalError(absl::StrCat("listing ", dir_, ": ", ec.message()));
  return out;
}

}  // namespace rbdcsi
