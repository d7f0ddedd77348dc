#include "cmd/mappers.h"

#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "driver/holders_message.h"
#include "holders/holders.h"
#include "holders/procfs.h"
#include "rbd/fuse_mapper.h"
#include "rbd/krbd_mapper.h"
#include "rbd/loop_device.h"
#include "rbd/loop_images.h"
#include "rbd/loop_mapper.h"
#include "rbd/nbd_mapper.h"

namespace rbdcsi {
namespace {

using MapperFactory = std::function<std::unique_ptr<Mapper>(const MapperEnv&)>;

std::unique_ptr<Mapper> NewLoop(const MapperEnv& env) {
  return std::make_unique<LoopMapper>(LoopImageStore(env.data_dir), NewRealLoopDevices());
}

// rbd-nbd's unmap cannot refuse a held device: the nbd mapper scans for holders first, all of
// them but the device's own daemon (which keeps the device open while it serves it).
std::function<absl::Status(const MappedDevice&, pid_t)> NbdHolderCheck() {
  std::shared_ptr<ProcFs> procfs = NewRealProcFs();
  auto scanner = std::make_shared<HolderScanner>(*procfs);
  auto mu = std::make_shared<std::mutex>();  // the scanner runs one scan at a time
  return [procfs, scanner, mu](const MappedDevice& device, pid_t daemon) -> absl::Status {
    std::lock_guard<std::mutex> lock(*mu);
    ScanOptions options;
    if (daemon > 0) options.exclude_pids.push_back(daemon);
    ASSIGN_OR_RETURN(const HolderReport report, scanner->Scan(device.major, device.minor, options));
    if (!report.held()) return absl::OkStatus();
    std::vector<std::string> clauses;
    for (const Holder& holder : report.holders) clauses.push_back(DescribeHolder(holder));
    return BusyError(absl::StrCat(device.path, " is in use (", absl::StrJoin(clauses, "; "),
                                  "); rbd-nbd would pull it out from under them, so it stays "
                                  "mapped"));
  };
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

std::unique_ptr<Mapper> NewNbd(const MapperEnv& env) {
  NbdMapperOptions options;
  options.rbd_program = env.rbd_program;
  options.key_dir = env.key_dir;
  options.check_unused = NbdHolderCheck();
  return std::make_unique<NbdMapper>(env.runner, options);
}

// A new mapper is one file pair in rbd/ and one line here.
const std::vector<std::pair<std::string, MapperFactory>>& Factories() {
  static const auto* const factories = new std::vector<std::pair<std::string, MapperFactory>>{
      {"loop", NewLoop},
      {"krbd", NewKrbd},
      {"fuse", NewFuse},
      {"nbd", NewNbd},
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
