// `rbdcsi gc`: gathering the devices, their records, holders and ages, then acting.
#include <ctime>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "base/command.h"
#include "base/file_util.h"
#include "base/status.h"
#include "cmd/gc.h"
#include "cmd/mappers.h"
#include "cmd/state_dir_lock.h"
#include "driver/holders_message.h"
#include "holders/holders.h"
#include "holders/procfs.h"

namespace rbdcsi {
namespace {

struct Gathered {
  std::vector<GcDevice> devices;
  std::vector<Mapper*> mapper_of;  // per device
  std::vector<std::string> notes;
};

// Every mapper's devices. A mapper that cannot list (e.g. no rbd CLI) is noted and skipped:
// none of its devices is touched.
void ListDevices(MapperRegistry& mappers, Gathered& g) {
  for (Mapper* mapper : mappers.All()) {
    absl::StatusOr<std::vector<MappedDevice>> mapped = mapper->List();
    if (!mapped.ok()) {
      g.notes.push_back(absl::StrCat("mapper ", AsAbsl(mapper->Name()),
                                     ": cannot list its devices (", mapped.status().message(),
                                     "); none of them was touched"));
      continue;
    }
    for (const MappedDevice& d : *mapped) {
      GcDevice device;
      device.mapper = std::string(mapper->Name());
      device.device = d;
      device.ours = mapper->Traits().lists_only_own;
      g.devices.push_back(std::move(device));
      g.mapper_of.push_back(mapper);
    }
  }
}

// Holders of our devices that no record names (the others are kept whatever holds them).
void ScanHolders(const std::vector<VolumeRecord>& records, Gathered& g) {
  std::unique_ptr<ProcFs> procfs = NewRealProcFs();
  HolderScanner scanner(*procfs);
  for (GcDevice& d : g.devices) {
    if (!d.ours || GcRecordOf(d, records) != nullptr) continue;
    absl::StatusOr<HolderReport> report = scanner.Scan(d.device.major, d.device.minor, {});
    if (!report.ok()) {
      d.scan = report.status();
      continue;
    }
    for (const Holder& h : report->holders) d.holders.push_back(DescribeHolder(h));
  }
}

// Ages from the first-seen memory; returns the memory of what is unrecorded now.
std::map<std::string, int64_t> Age(const std::map<std::string, int64_t>& seen,
                                   const std::vector<VolumeRecord>& records, int64_t now,
                                   Gathered& g) {
  std::map<std::string, int64_t> next;
  for (GcDevice& d : g.devices) {
    if (!d.ours || GcRecordOf(d, records) != nullptr) continue;
    auto it = seen.find(GcSeenKey(d));
    const int64_t first = it == seen.end() || it->second > now ? now : it->second;
    d.unrecorded_for = now - first;
    next[GcSeenKey(d)] = first;
  }
  return next;
}

// Unmaps each device decided kUnmap through its own mapper (never forced: refused, busy, while
// anything holds it). An unmapped device leaves `seen`; a failure's message goes to its
// `outcomes` entry. Returns 1 when any unmap failed, else 0.
int UnmapDecided(const std::vector<GcDecision>& decisions, const Gathered& g,
                 std::map<std::string, int64_t>& seen, std::vector<std::string>& outcomes) {
  int code = 0;
  for (size_t i = 0; i < decisions.size(); ++i) {
    if (decisions[i].verdict != GcVerdict::kUnmap) continue;
    absl::Status st = g.mapper_of[i]->Unmap(decisions[i].device.device);
    if (st.ok()) {
      seen.erase(GcSeenKey(decisions[i].device));
    } else {
      outcomes[i] = std::string(st.message());
      code = 1;
    }
  }
  return code;
}

}  // namespace

void AddGcFlags(CLI::App& app, GcFlags& flags) {
  app.add_option("--state-dir", flags.state_dir, "rbdcsi serve's --state-dir")
      ->capture_default_str();
  app.add_option("--data-dir", flags.data_dir, "rbdcsi serve's --data-dir (loop mapper)")
      ->capture_default_str();
  app.add_option("--fuse-dir", flags.fuse_dir, "rbdcsi serve's --fuse-dir (fuse mapper)")
      ->capture_default_str();
  app.add_option("--rbd-program", flags.rbd_program, "The rbd CLI (krbd and nbd mappers)")
      ->capture_default_str();
  app.add_option("--grace", flags.grace_seconds,
                 "Seconds a device must have been seen without a record (by earlier gc runs) "
                 "before gc unmaps it")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--dry-run", flags.dry_run,
               "Print each device's decision and its reason; unmap nothing, remember nothing");
}

int RunGc(const GcFlags& flags) {
  // A mistyped --state-dir must not make every device look unrecorded.
  RecordStore store(flags.state_dir + "/volumes");
  std::error_code ec;
  if (!std::filesystem::is_directory(store.dir(), ec)) {
    std::cerr << "rbdcsi gc: " << flags.state_dir
              << " is not the state directory of an rbdcsi serve (it has no volumes/)\n";
    return 2;
  }
  // While gc runs no stage can start, so no device it looks at can gain a record meanwhile.
  absl::StatusOr<UniqueFd> lock = LockStateDir(flags.state_dir, "gc");
  if (!lock.ok()) {
    std::cerr << "rbdcsi gc: " << lock.status().message()
              << (absl::IsFailedPrecondition(lock.status())
                      ? "; gc runs only while no rbdcsi serve uses the state directory (before "
                        "serve starts, or with the node plugin stopped)"
                      : "")
              << "\n";
    return 2;
  }
  std::unique_ptr<CommandRunner> runner = NewRealCommandRunner();
  MapperEnv env;
  env.data_dir = flags.data_dir;
  env.fuse_dir = flags.fuse_dir;
  env.rbd_program = flags.rbd_program;
  env.runner = runner.get();
  MapperRegistry mappers;
  if (absl::Status st = RegisterMappers(env, &mappers); !st.ok()) {
    std::cerr << "rbdcsi gc: " << st.message() << "\n";
    return 2;
  }
  Gathered g;
  ListDevices(mappers, g);
  absl::StatusOr<std::vector<VolumeRecord>> records = store.List();
  if (!records.ok()) {
    std::cerr << "rbdcsi gc: " << records.status().message() << "\n";
    return 2;
  }
  ScanHolders(*records, g);
  const std::string seen_path = flags.state_dir + "/gc-seen.json";
  std::map<std::string, int64_t> seen =
      Age(ParseGcSeen(ReadFileUpTo(seen_path, 1 << 20).value_or("")), *records,
          static_cast<int64_t>(time(nullptr)), g);
  const std::vector<GcDecision> decisions =
      DecideGc(g.devices, *records, static_cast<int64_t>(flags.grace_seconds));
  std::vector<std::string> outcomes(decisions.size());
  int code = 0;
  if (!flags.dry_run) {
    code = UnmapDecided(decisions, g, seen, outcomes);
    if (absl::Status st = ReplaceFile(seen_path, FormatGcSeen(seen)); !st.ok()) {
      g.notes.push_back(st.ToString());
    }
  }
  std::cout << FormatGcTable(decisions, outcomes, flags.dry_run);
  for (const std::string& note : g.notes) std::cout << "note: " << note << "\n";
  return code;
}

}  // namespace rbdcsi
