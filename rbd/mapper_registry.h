// The mappers this plugin offers, by name. Registration happens in one place (cmd/serve.cc);
// the node core looks mappers up here and reads their traits, never their names.
#ifndef RBDCSI_RBD_MAPPER_REGISTRY_H_
#define RBDCSI_RBD_MAPPER_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// Filled before serving, then only read: lookups are thread-safe once registration is done.
class MapperRegistry {
 public:
  // Registers `mapper` under its Name(), owning it. ALREADY_EXISTS for a taken name,
  // INVALID_ARGUMENT for a null mapper or an empty name.
  absl::Status Add(std::unique_ptr<Mapper> mapper);
  // The same, for a mapper owned elsewhere that outlives the registry (tests, shared mappers).
  absl::Status AddUnowned(Mapper* mapper);

  // INVALID_ARGUMENT "unknown mapper 'x': this node has a, b" for a name not registered.
  absl::StatusOr<Mapper*> Find(std::string_view name) const;

  // Every mapper, ordered by name, so that searches across mappers are deterministic.
  std::vector<Mapper*> All() const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, Mapper*, std::less<>> by_name_;
  std::vector<std::unique_ptr<Mapper>> owned_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_MAPPER_REGISTRY_H_
