// YAML in and out for Kubernetes objects, through JSON values: Kubernetes objects are JSON
// documents, YAML is how people write them.
#ifndef RBDCSI_MIGRATE_YAML_H_
#define RBDCSI_MIGRATE_YAML_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace rbdcsi {

// Parses every document of a YAML stream (JSON is accepted too: it is YAML). Plain scalars
// become booleans, integers or null where YAML 1.2's core schema says so, strings otherwise;
// quoted scalars stay strings. Empty documents are skipped. INVALID_ARGUMENT with the line and
// column on a syntax error.
absl::StatusOr<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text);

// Block-style YAML for `value`, ending in a newline. Strings that YAML would read as anything
// else (numbers, booleans, null, or with characters that need escaping) are double-quoted.
std::string EmitYaml(const nlohmann::json& value);

}  // namespace rbdcsi

#endif  // RBDCSI_MIGRATE_YAML_H_
