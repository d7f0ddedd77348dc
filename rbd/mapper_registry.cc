#include "rbd/mapper_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"

namespace rbdcsi {

absl::Status MapperRegistry::Add(std::unique_ptr<Mapper> mapper) {
  RETURN_IF_ERROR(AddUnowned(mapper.get()));
  owned_.push_back(std::move(mapper));
  return absl::OkStatus();
}

absl::Status MapperRegistry::AddUnowned(Mapper* mapper) {
  if (mapper == nullptr || mapper->Name().empty()) {
    return absl::InvalidArgumentError("a mapper needs a name");
  }
  const std::string name(mapper->Name());
  if (!by_name_.emplace(name, mapper).second) {
    return absl::AlreadyExistsError(absl::StrCat("mapper '", name, "' is registered twice"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Mapper*> MapperRegistry::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown mapper '", AsAbsl(name), "': this node has ", absl::StrJoin(Names(), ", ")));
  }
  return it->second;
}

std::vector<Mapper*> MapperRegistry::All() const {
  std::vector<Mapper*> out;
  for (const auto& [name, mapper] : by_name_) out.push_back(mapper);
  return out;
}

std::vector<std::string> MapperRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, mapper] : by_name_) out.push_back(name);
  return out;
}

}  // namespace rbdcsi
