#include "migrate/yaml.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace rbdcsi {
namespace {

nlohmann::json FromPlainScalar(const std::string& s) {
  // YAML 1.2 core schema, the forms Kubernetes objects use.
  static const std::regex kInt("[-+]?[0-9]+");
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s.size() < 19 && std::regex_match(s, kInt)) return std::stoll(s);
  return s;
}

nlohmann::json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = ToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(ToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      // yaml-cpp tags quoted scalars "!" and plain ones "?".
      if (node.Tag() == "!") return node.Scalar();
      return FromPlainScalar(node.Scalar());
    default:
      return nullptr;
  }
}

bool NeedsQuotes(const std::string& s) {
  static const std::regex kPlain("[A-Za-z0-9_./][A-Za-z0-9_./=+-]*");
  if (!std::regex_match(s, kPlain)) return true;
  return !FromPlainScalar(s).is_string() || std::regex_match(s, std::regex("[-+0-9.eE]+"));
}

std::string Scalar(const nlohmann::json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    return NeedsQuotes(s) ? v.dump() : s;  // a JSON string is a valid YAML double-quoted one
  }
  return v.dump();
}

bool IsEmptyCollection(const nlohmann::json& v) { return v.is_structured() && v.empty(); }

void Emit(const nlohmann::json& v, int indent, std::string& out) {
  const std::string pad(indent, ' ');
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) {
      absl::StrAppend(&out, pad, Scalar(key), ":");
      if (value.is_structured() && !value.empty()) {
        out += "\n";
        Emit(value, value.is_array() ? indent : indent + 2, out);
      } else {
        absl::StrAppend(&out, " ", IsEmptyCollection(value) ? value.dump() : Scalar(value), "\n");
      }
    }
    return;
  }
  for (const auto& item : v) {
    if (item.is_object() && !item.empty()) {
      std::string nested;
      Emit(item, indent + 2, nested);
      nested.replace(indent, 2, "- ");  // "- " takes the place of the first key's indent
      out += nested;
    } else if (item.is_array() && !item.empty()) {
      absl::StrAppend(&out, pad, "-\n");
      Emit(item, indent + 2, out);
    } else {
      absl::StrAppend(&out, pad, "- ", IsEmptyCollection(item) ? item.dump() : Scalar(item), "\n");
    }
  }
}

}  // namespace

absl::StatusOr<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text) {
  std::vector<nlohmann::json> docs;
  try {
    for (const YAML::Node& node : YAML::LoadAll(std::string(text))) {
      if (node.IsNull()) continue;
      docs.push_back(ToJson(node));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not valid YAML or JSON: line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1, ": ", e.msg));
  }
  return docs;
}

std::string EmitYaml(const nlohmann::json& value) {
  std::string out;
  if (value.is_structured() && !value.empty()) {
    Emit(value, 0, out);
  } else {
    absl::StrAppend(&out, IsEmptyCollection(value) ? value.dump() : Scalar(value), "\n");
  }
  return out;
}

}  // namespace rbdcsi
