#include "rbd/cluster_config.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "base/logging.h"
#include "base/status.h"
#include "rbd/image_id.h"

namespace rbdcsi {
namespace {

using nlohmann::json;

// "host:port", "[v6]:port" or a bare host (Ceph's default port then).
bool ValidMonitor(const std::string& mon) {
  if (mon.empty() || mon.size() > 255) return false;
  for (char c : mon) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        std::string_view(".-:[]").find(c) == std::string_view::npos) {
      return false;
    }
  }
  const size_t colon = mon.rfind(':');
  const bool has_port = colon != std::string::npos &&
                        (mon.find(':') == colon || (colon > 0 && mon[colon - 1] == ']'));
  int port = 0;
  return !has_port || (absl::SimpleAtoi(mon.substr(colon + 1), &port) && port > 0 && port < 65536);
}

absl::Status Bad(size_t index, std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "cluster config entry ", index, ": ", AsAbsl(field), field.empty() ? "" : " ", AsAbsl(why)));
}

absl::StatusOr<ClusterConfig> ParseEntry(const json& entry, size_t i) {
  if (!entry.is_object()) return Bad(i, "", "is not an object");
  ClusterConfig c;
  const auto id = entry.find("clusterID");
  if (id == entry.end() || !id->is_string()) return Bad(i, "clusterID", "is missing");
  c.cluster_id = id->get<std::string>();
  if (absl::Status st = ValidateImageName(c.cluster_id, "clusterID"); !st.ok()) {
    return Bad(i, "", std::string(st.message()));
  }
  const auto mons = entry.find("monitors");
  if (mons == entry.end() || !mons->is_array() || mons->empty()) {
    return Bad(i, "monitors", "must be a non-empty array of \"host:port\"");
  }
  for (const json& m : *mons) {
    if (!m.is_string() || !ValidMonitor(m.get<std::string>())) {
      return Bad(i, "monitors", absl::StrCat("has an invalid entry ", m.dump()));
    }
    c.monitors.push_back(m.get<std::string>());
  }
  if (const auto rbd = entry.find("rbd"); rbd != entry.end()) {
    if (!rbd->is_object()) return Bad(i, "rbd", "is not an object");
    if (const auto ns = rbd->find("radosNamespace"); ns != rbd->end()) {
      if (!ns->is_string()) return Bad(i, "rbd.radosNamespace", "is not a string");
      c.rados_namespace = ns->get<std::string>();
    }
  }
  if (const auto cred = entry.find("controllerCredentials"); cred != entry.end()) {
    const auto user = cred->is_object() ? cred->find("userID") : cred->end();
    const auto file = cred->is_object() ? cred->find("keyFile") : cred->end();
    if (user == cred->end() || file == cred->end() || !user->is_string() || !file->is_string() ||
        user->get<std::string>().empty() || file->get<std::string>().empty() ||
        file->get<std::string>()[0] != '/') {
      return Bad(i, "controllerCredentials", "needs userID and an absolute keyFile path");
    }
    c.controller_user = user->get<std::string>();
    c.controller_key_file = file->get<std::string>();
  }
  return c;
}

}  // namespace

std::string ClusterConfig::MonitorList() const { return absl::StrJoin(monitors, ","); }

absl::StatusOr<std::vector<ClusterConfig>> ParseClusterConfig(std::string_view text) {
  const json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("cluster config is not valid JSON");
  if (!doc.is_array()) return absl::InvalidArgumentError("cluster config must be a JSON array");
  std::vector<ClusterConfig> out;
  std::set<std::string> ids;
  for (size_t i = 0; i < doc.size(); ++i) {
    ASSIGN_OR_RETURN(ClusterConfig c, ParseEntry(doc[i], i));
    if (!ids.insert(c.cluster_id).second) {
      return Bad(i, "clusterID", absl::StrCat("\"", c.cluster_id, "\" appears twice"));
    }
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ClusterConfigSource>> ClusterConfigSource::Load(
    const std::string& path) {
  auto source = std::make_unique<ClusterConfigSource>();
  source->path_ = path;
  RETURN_IF_ERROR(Annotate(source->Reload(), path));
  return source;
}

absl::Status ClusterConfigSource::Reload() {
  if (path_.empty()) return absl::OkStatus();
  // Callers hold mu_ except Load(), where nobody else can see the object yet.
  struct stat st {};
  if (stat(path_.c_str(), &st) != 0) return ErrnoToStatus(errno, "stat " + path_);
  const FileStamp stamp{st.st_ino, st.st_size,
                        int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
  if (stamp == stamp_ || (rejected_ && *rejected_ == stamp)) return absl::OkStatus();
  absl::StatusOr<std::string> text = ReadWholeFile(path_);
  absl::StatusOr<std::vector<ClusterConfig>> parsed =
      text.ok() ? ParseClusterConfig(*text) : text.status();
  if (!parsed.ok()) {
    rejected_ = stamp;
    return parsed.status();
  }
  clusters_ = std::move(*parsed);
  stamp_ = stamp;
  rejected_.reset();
  return absl::OkStatus();
}

void ClusterConfigSource::MaybeReload() {
  const auto now = std::chrono::steady_clock::now();
  if (path_.empty() || now - last_check_ < std::chrono::seconds(1)) return;
  last_check_ = now;
  if (absl::Status st = Reload(); !st.ok()) {
    Logger("config")->error(
        "cluster config {} changed but is not valid, keeping the previous one: {}", path_,
        st.message());
  }
}

absl::StatusOr<ClusterConfig> ClusterConfigSource::Find(std::string_view cluster_id) {
  std::lock_guard<std::mutex> lock(mu_);
  MaybeReload();
  for (const ClusterConfig& c : clusters_) {
    if (c.cluster_id == cluster_id) return c;
  }
  return absl::NotFoundError(absl::StrCat("clusterID \"", AsAbsl(cluster_id),
                                          "\" is not in this plugin's cluster config"));
}

std::vector<std::string> ClusterConfigSource::Ids() {
  std::lock_guard<std::mutex> lock(mu_);
  MaybeReload();
  std::vector<std::string> ids;
  for (const ClusterConfig& c : clusters_) ids.push_back(c.cluster_id);
  return ids;
}

absl::StatusOr<std::string> ClusterConfigSource::ReadControllerKey(const ClusterConfig& c) {
  if (c.controller_user.empty()) {
    return absl::NotFoundError(absl::StrCat("cluster ", c.cluster_id,
                                            " has no controllerCredentials in the cluster config"));
  }
  struct stat st {};
  if (stat(c.controller_key_file.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, "stat " + c.controller_key_file);
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("key file ", c.controller_key_file, " is readable by group or others"));
  }
  ASSIGN_OR_RETURN(std::string key, ReadSmallFile(c.controller_key_file));
  return std::string(absl::StripAsciiWhitespace(key));
}

}  // namespace rbdcsi
