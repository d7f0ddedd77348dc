// The mappers this plugin offers: one table, one line per mapper (cmd/mappers.cc). Everything
// that needs the set of mappers (serve, doctor, the --default-mapper check) comes here.
#ifndef RBDCSI_CMD_MAPPERS_H_
#define RBDCSI_CMD_MAPPERS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/command.h"
#include "rbd/mapper_registry.h"

namespace rbdcsi {

// What the mappers are built from; `runner` must outlive them.
struct MapperEnv {
  std::string data_dir;                      // the loop backend's images
  std::string rbd_program = "rbd";           // the rbd CLI (krbd)
  std::string key_dir = "/run/rbdcsi/keys";  // per-call cephx key files (krbd)
  CommandRunner* runner = nullptr;
  std::string fuse_dir = "/run/rbdcsi/fuse";  // per-volume rbd-fuse mounts (fuse)
  std::string rbd_fuse_program = "rbd-fuse";
};

// The names of the offered mappers, in registration order.
std::vector<std::string> MapperNames();

// Builds every offered mapper into `registry`. ALREADY_EXISTS if one is registered already.
absl::Status RegisterMappers(const MapperEnv& env, MapperRegistry* registry);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_MAPPERS_H_
