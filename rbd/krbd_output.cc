// Parsing and decoding of what the rbd CLI prints.
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rbd/krbd_mapper.h"

namespace rbdcsi {
namespace {

constexpr size_t kMaxDecodedLength = 1000;

// The string member `key` of `object`, or "" when absent or not a string (rbd always writes
// strings; a number would be a format we do not know, and is ignored rather than thrown on).
std::string StringMember(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

absl::StatusOr<RbdDeviceEntry> EntryOf(const nlohmann::json& object, std::string id) {
  if (!object.is_object()) {
    return absl::InternalError("rbd device list: an entry is not a JSON object");
  }
  RbdDeviceEntry entry;
  entry.id = StringMember(object, "id");
  if (entry.id.empty()) entry.id = std::move(id);
  entry.pool = StringMember(object, "pool");
  entry.nspace = StringMember(object, "namespace");
  entry.name = StringMember(object, "name");
  // rbd-nbd's list (also what `rbd device list -t nbd` prints) says "image", and a numeric id.
  if (entry.name.empty()) entry.name = StringMember(object, "image");
  entry.snap = StringMember(object, "snap");
  entry.device = StringMember(object, "device");
  if (entry.pool.empty() || entry.name.empty() || entry.device.empty()) {
    return absl::InternalError("rbd device list: an entry lacks \"pool\", \"name\" or \"device\"");
  }
  return entry;
}

}  // namespace

absl::StatusOr<std::vector<RbdDeviceEntry>> ParseRbdDeviceList(std::string_view json_text) {
  const absl::string_view json(json_text.data(), json_text.size());
  std::vector<RbdDeviceEntry> out;
  if (absl::StripAsciiWhitespace(json).empty()) return out;
  const nlohmann::json doc = nlohmann::json::parse(json.begin(), json.end(), nullptr,
                                                   /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return absl::InternalError(absl::StrCat("rbd device list: output is not JSON: ",
                                            DecodeCommandOutput(json_text.substr(0, 200))));
  }
  if (doc.is_array()) {
    for (const nlohmann::json& item : doc) {
      absl::StatusOr<RbdDeviceEntry> entry = EntryOf(item, "");
      if (!entry.ok()) return entry.status();
      out.push_back(*std::move(entry));
    }
  } else if (doc.is_object()) {
    for (auto it = doc.begin(); it != doc.end(); ++it) {
      absl::StatusOr<RbdDeviceEntry> entry = EntryOf(it.value(), it.key());
      if (!entry.ok()) return entry.status();
      out.push_back(*std::move(entry));
    }
  } else {
    return absl::InternalError("rbd device list: output is neither a JSON array nor an object");
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseRbdWatchers(std::string_view json_text) {
  const nlohmann::json doc = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr,
                                                   /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("watchers") || !doc["watchers"].is_array()) {
    return absl::InternalError(absl::StrCat("rbd status: output is not {\"watchers\": [...]}: ",
                                            DecodeCommandOutput(json_text.substr(0, 200))));
  }
  std::vector<std::string> out;
  for (const nlohmann::json& w : doc["watchers"]) {
    if (!w.is_object()) continue;
    std::string client = "an unknown client";
    if (auto it = w.find("client"); it != w.end() && it->is_number_integer()) {
      client = absl::StrCat("client.", it->get<int64_t>());
    }
    out.push_back(absl::StrCat(client, " at ", StringMember(w, "address")));
  }
  return out;
}

std::string DecodeCommandOutput(std::string_view raw) {
  const absl::string_view bytes(raw.data(), raw.size());
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(bytes, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::string clean(line);
    for (char& c : clean) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7f) c = '?';
    }
    lines.push_back(std::move(clean));
  }
  std::string out = absl::StrJoin(lines, "; ");
  if (out.size() > kMaxDecodedLength) {
    out.resize(kMaxDecodedLength);
    out += "...";
  }
  return out;
}

}  // namespace rbdcsi
