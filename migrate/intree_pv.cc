#include "migrate/intree_pv.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rbdcsi {
namespace {

using nlohmann::json;

// What the in-tree plugin assumed when a field was left out.
constexpr char kDefaultPool[] = "rbd";
constexpr char kDefaultUser[] = "admin";
constexpr char kDefaultKeyring[] = "/etc/ceph/keyring";

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

// A name rbd and a command line can carry unchanged: no separators rbd gives meaning to.
bool ValidRbdName(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  for (unsigned char c : name) {
    if (c <= ' ' || c == 0x7f || c == '/' || c == '@' || c == ',') return false;
  }
  return true;
}

// What an in-tree rbd PersistentVolume says, with the in-tree plugin's defaults filled in.
struct InTreeRbd {
  std::vector<std::string> monitors;
  std::string pool, image, user;
  std::string secret_name, secret_namespace;
};

// Checks the monitors, pool, image and user of spec.rbd into `in`: the refusal reason, or empty.
std::string ReadImage(const json& rbd, InTreeRbd& in) {
  for (const json& m : rbd.value("monitors", json::array())) {
    if (!m.is_string() || !ValidRbdName(m.get<std::string>())) {
      return absl::StrCat("spec.rbd.monitors: '", m.is_string() ? m.get<std::string>() : m.dump(),
                          "' is not a monitor address");
    }
    in.monitors.push_back(m.get<std::string>());
  }
  if (in.monitors.empty()) return "spec.rbd.monitors is empty: rbdcsi needs the monitors to map";
  in.image = Str(rbd, "image");
  if (in.image.empty()) return "spec.rbd.image is missing";
  in.pool = Str(rbd, "pool");
  if (in.pool.empty()) in.pool = kDefaultPool;
  in.user = Str(rbd, "user");
  if (in.user.empty()) in.user = kDefaultUser;
  for (const auto& [field, value] : {std::pair<const char*, const std::string&>{"pool", in.pool},
                                     {"image", in.image},
                                     {"user", in.user}}) {
    if (!ValidRbdName(value)) {
      return absl::StrCat("spec.rbd.", field, " '", value,
                          "' contains a character rbd names cannot carry ('/', '@', ',', space)");
    }
  }
  return "";
}

// Checks the key's Secret and the access modes into `in`: the refusal reason, or empty.
std::string ReadSecretAndModes(const json& spec, const json& rbd, InTreeRbd& in) {
  const json& secret = rbd.value("secretRef", json());
  if (!secret.is_object() || Str(secret, "name").empty()) {
    std::string keyring = Str(rbd, "keyring");
    if (keyring.empty()) keyring = kDefaultKeyring;
    return absl::StrCat("no spec.rbd.secretRef: the in-tree plugin read client.", in.user,
                        "'s key from ", keyring,
                        " on each node, which rbdcsi never reads; create a Secret of type "
                        "kubernetes.io/rbd with the key under `key`, name it in "
                        "spec.rbd.secretRef, and convert again");
  }
  in.secret_name = Str(secret, "name");
  in.secret_namespace = Str(secret, "namespace");
  if (in.secret_namespace.empty())
    in.secret_namespace = Str(spec.value("claimRef", json()), "namespace");
  if (in.secret_namespace.empty()) {
    return "spec.rbd.secretRef names no namespace and the volume has no claim to take it from; "
           "add spec.rbd.secretRef.namespace";
  }
  const json modes = spec.value("accessModes", json::array());
  for (const json& m : modes) {
    if (m == "ReadWriteMany") {
      return "accessModes ReadWriteMany: an rbd filesystem mounted writable on two nodes "
             "corrupts it; rbdcsi offers ReadWriteOnce, ReadWriteOncePod and ReadOnlyMany";
    }
  }
  return "";
}

// The new PV's spec: the csi source in place of spec.rbd, and the fields that carry over.
json CsiSpec(const json& spec, const json& rbd, const InTreeRbd& in, const MigrateOptions& opt) {
  json csi = {{"driver", opt.driver_name}, {"volumeHandle", absl::StrCat(in.pool, "/", in.image)}};
  csi["volumeAttributes"] = {{"mapper", opt.mapper},
                             {"monitors", absl::StrJoin(in.monitors, ",")},
                             {"pool", in.pool},
                             {"image", in.image},
                             {"user", in.user}};
  csi["nodeStageSecretRef"] = {{"name", in.secret_name}, {"namespace", in.secret_namespace}};
  if (spec.value("volumeMode", "Filesystem") != "Block") {
    csi["fsType"] = Str(rbd, "fsType").empty() ? "ext4" : Str(rbd, "fsType");
  }
  if (rbd.value("readOnly", false)) csi["readOnly"] = true;

  json new_spec = {{"csi", csi}};
  for (const char* key : {"capacity", "accessModes", "volumeMode", "persistentVolumeReclaimPolicy",
                          "storageClassName", "mountOptions", "nodeAffinity"}) {
    if (spec.contains(key)) new_spec[key] = spec[key];
  }
  const json& claim = spec.value("claimRef", json());
  if (claim.is_object()) {
    new_spec["claimRef"] = json::object();
    for (const char* key : {"apiVersion", "kind", "name", "namespace"}) {
      if (claim.contains(key)) new_spec["claimRef"][key] = claim[key];
    }
  }
  return new_spec;
}

// The new PV's metadata: its name, labels and annotations but those the API server and kubectl
// set.
json NewMetadata(const json& meta) {
  json new_meta = {{"name", Str(meta, "name")}};
  if (meta.contains("labels")) new_meta["labels"] = meta["labels"];
  const json annotations = meta.value("annotations", json::object());
  for (const auto& [key, value] : annotations.items()) {
    if (absl::StartsWith(key, "pv.kubernetes.io/") ||
        absl::StartsWith(key, "kubectl.kubernetes.io/")) {
      continue;
    }
    new_meta["annotations"][key] = value;
  }
  return new_meta;
}

// Returns the refusal reason (throws json::exception on a field of the wrong type), or empty when
// `pv` converted into `out`.
std::string Convert(const json& pv, const MigrateOptions& opt, json& out,
                    std::vector<std::string>& warnings) {
  const json& spec = pv.value("spec", json::object());
  const json& rbd = spec.value("rbd", json());
  if (!rbd.is_object()) {
    if (spec.contains("csi")) return "already a CSI volume (spec.csi): nothing to convert";
    return "not an in-tree rbd volume (no spec.rbd)";
  }
  InTreeRbd in;
  if (std::string why = ReadImage(rbd, in); !why.empty()) return why;
  if (std::string why = ReadSecretAndModes(spec, rbd, in); !why.empty()) return why;
  const json& meta = pv.value("metadata", json::object());
  out = {{"apiVersion", "v1"},
         {"kind", "PersistentVolume"},
         {"metadata", NewMetadata(meta)},
         {"spec", CsiSpec(spec, rbd, in, opt)}};
  const std::string name = Str(meta, "name");
  if (spec.value("persistentVolumeReclaimPolicy", "") == "Delete") {
    warnings.push_back(absl::StrCat(
        "PersistentVolume ", name,
        ": reclaim policy Delete kept, but nothing provisioned this CSI volume: when its claim "
        "is deleted the volume turns Failed and the image stays; say Retain to mean it"));
  }
  if (!Str(rbd, "keyring").empty() && Str(rbd, "keyring") != kDefaultKeyring) {
    warnings.push_back(absl::StrCat("PersistentVolume ", name, ": spec.rbd.keyring ignored; the ",
                                    "key comes from Secret ", in.secret_namespace, "/",
                                    in.secret_name));
  }
  return "";
}

void Collect(const json& obj, const MigrateOptions& opt, MigrateResult& result) {
  const std::string kind = Str(obj, "kind");
  if (kind == "List" || absl::EndsWith(kind, "List")) {
    for (const json& item : obj.value("items", json::array())) Collect(item, opt, result);
    return;
  }
  const std::string name = Str(obj.value("metadata", json::object()), "name");
  const std::string label =
      absl::StrCat(kind.empty() ? "object" : kind, " ", name.empty() ? "(unnamed)" : name);
  if (kind != "PersistentVolume") {
    result.refusals.push_back(absl::StrCat(label, ": not a PersistentVolume"));
    return;
  }
  if (name.empty()) {
    result.refusals.push_back(absl::StrCat(label, ": metadata.name is missing"));
    return;
  }
  json out;
  std::string why;
  try {
    why = Convert(obj, opt, out, result.warnings);
  } catch (const json::exception& e) {  // a field of the wrong type, e.g. readOnly: "yes"
    why = absl::StrCat("a field has an unexpected type: ", e.what());
  }
  if (!why.empty()) {
    result.refusals.push_back(absl::StrCat(label, ": ", why));
    return;
  }
  result.volumes.push_back(std::move(out));
}

}  // namespace

MigrateResult MigrateInTreePvs(const std::vector<json>& objects, const MigrateOptions& options) {
  MigrateResult result;
  for (const json& obj : objects) Collect(obj, options, result);
  return result;
}

}  // namespace rbdcsi
