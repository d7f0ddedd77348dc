#include "cmd/mappers.h"

#include <functional>
#include <memory>
#include <utility>

#include "base/status.h"
#include "rbd/fuse_mapper.h"
#include "rbd/krbd_mapper.h"
#include "rbd/loop_device.h"
#include "rbd/loop_images.h"
#include "rbd/loop_mapper.h"

namespace rbdcsi {
namespace {

using MapperFactory = std::function<std::unique_ptr<Mapper>(const MapperEnv&)>;

std::unique_ptr<Mapper> NewLoop(const MapperEnv& env) {
  return std::make_unique<LoopMapper>(LoopImageStore(env.data_dir), NewRealLoopDevices());
}

std::unique_ptr<Mapper> NewKrbd(const MapperEnv& env) {
  KrbdMapperOptions options;
  options.rbd_program = env.rbd_program;
  options.key_dir = env.key_dir;
  return std::make_unique<KrbdMapper>(env.runner, options);
}

std::unique_ptr<Mapper> NewFuse(const MapperEnv& env) {
  FuseMapperOptions options;
  options.dir = env.fuse_dir;
  options.rbd_fuse_program = env.rbd_fuse_program;
  return std::make_unique<FuseMapper>(options, NewRealLoopDevices());
}

// A new mapper is one file pair in rbd/ and one line here.
const std::vector<std::pair<std::string, MapperFactory>>& Factories() {
  static const auto* const factories = new std::vector<std::pair<std::string, MapperFactory>>{
      {"loop", NewLoop},
      {"krbd", NewKrbd},
      {"fuse", NewFuse},
  };
  return *factories;
}

}  // namespace

std::vector<std::string> MapperNames() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : Factories()) names.push_back(name);
  return names;
}

absl::Status RegisterMappers(const MapperEnv& env, MapperRegistry* registry) {
  for (const auto& [name, factory] : Factories()) {
    std::unique_ptr<Mapper> mapper = factory(env);
    if (mapper->Name() != name) {
      return absl::InternalError("mapper table entry " + name + " builds another mapper");
    }
    RETURN_IF_ERROR(registry->Add(std::move(mapper)));
  }
  return absl::OkStatus();
}

}  // namespace rbdcsi
