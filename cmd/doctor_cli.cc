// `rbdcsi doctor`: gathering its inputs from the records and the mappers, and its output.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/command.h"
#include "base/status.h"
#include "cmd/doctor.h"
#include "cmd/mappers.h"
#include "driver/cri_namer.h"
#include "driver/endpoint.h"
#include "driver/volume_record.h"

namespace rbdcsi {
namespace {

// "pid 4242 (node_exporter) pod monitoring/node-exporter-x7k2p container node-exporter
// (3f2a9c0d1e2f)", or with the pod uid when the runtime did not name it.
std::string Owner(const Hazard& h) {
  if (h.pid == 0) {
    return h.mount_namespace == 0
               ? "-"
               : absl::StrCat("no process",
                              h.pinned_at.empty() ? "" : ", pinned at " + h.pinned_at);
  }
  std::string who = absl::StrCat("pid ", h.pid, " (", h.comm, ")");
  const ContainerIdentity& c = h.container;
  const std::string short_id = c.container_id.substr(0, 12);
  if (!c.pod_name.empty()) {
    absl::StrAppend(&who, " pod ", c.pod_namespace, "/", c.pod_name, " container ",
                    c.container_name, " (", short_id, ")");
    return who;
  }
  if (!c.container_id.empty()) absl::StrAppend(&who, " container ", short_id);
  if (!c.pod_uid.empty()) absl::StrAppend(&who, " pod uid ", c.pod_uid, " (name unknown)");
  return who;
}

// Asks the runtime at `endpoint` (unix://...) for containers' names.
absl::StatusOr<ContainerNameSource> CriNameSource(const std::string& endpoint) {
  ASSIGN_OR_RETURN(const std::string socket, ParseUnixEndpoint(endpoint));
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
  return ContainerNameSource([channel, endpoint](const std::string& id) {
    absl::StatusOr<ContainerNames> names =
        QueryContainerNames(channel, id, std::chrono::seconds(2));
    if (names.ok() || names.status().code() == absl::StatusCode::kNotFound) return names;
    return absl::StatusOr<ContainerNames>(Annotate(names.status(), endpoint));
  });
}

}  // namespace

std::string FormatDoctorTable(const DoctorReport& report) {
  std::ostringstream out;
  if (report.hazards.empty()) {
    out << "no hazards found\n";
  } else {
    out << "KIND\tSUBJECT\tHELD BY\tMOUNT NS\tMOUNT POINT\tPROPAGATION\n";
    for (const Hazard& h : report.hazards) {
      out << HazardKindName(h.kind) << "\t" << h.subject << "\t" << Owner(h) << "\t"
          << (h.mount_namespace == 0 ? "-" : std::to_string(h.mount_namespace)) << "\t"
          << (h.mount_point.empty() ? "-" : h.mount_point) << "\t"
          << (h.propagation.empty() ? (h.mount_point.empty() ? "-" : "private") : h.propagation)
          << "\n  fix: " << h.fix << "\n";
    }
  }
  for (const std::string& note : report.notes) out << "note: " << note << "\n";
  out << "checked " << report.namespaces_scanned << " mount namespaces, " << report.volumes_checked
      << " staged volumes, " << report.mappings_checked << " mappings: " << report.hazards.size()
      << " hazard(s)\n";
  return out.str();
}

nlohmann::json DoctorToJson(const DoctorReport& report) {
  nlohmann::json hazards = nlohmann::json::array();
  for (const Hazard& h : report.hazards) {
    nlohmann::json j = {{"kind", HazardKindName(h.kind)}, {"subject", h.subject}, {"fix", h.fix}};
    if (h.mount_namespace != 0) {
      j["mount_namespace"] = h.mount_namespace;
      j["mount_point"] = h.mount_point;
      j["propagation"] = h.propagation;
      j["pid"] = h.pid;
      j["comm"] = h.comm;
      j["cmdline"] = h.cmdline;
      j["container_id"] = h.container.container_id;
      j["pod_uid"] = h.container.pod_uid;
      j["pod_namespace"] = h.container.pod_namespace;
      j["pod_name"] = h.container.pod_name;
      j["container_name"] = h.container.container_name;
      if (!h.pinned_at.empty()) j["pinned_at"] = h.pinned_at;
    } else if (!h.mount_point.empty()) {
      j["mount_point"] = h.mount_point;
      j["propagation"] = h.propagation;
    }
    hazards.push_back(std::move(j));
  }
  return {{"hazards", hazards},
          {"notes", report.notes},
          {"namespaces_scanned", report.namespaces_scanned},
          {"volumes_checked", report.volumes_checked},
          {"mappings_checked", report.mappings_checked}};
}

void AddDoctorFlags(CLI::App& app, DoctorFlags& flags) {
  app.add_option("--kubelet-dir", flags.kubelet_dir, "kubelet's root directory")
      ->capture_default_str();
  app.add_option("--state-dir", flags.state_dir, "rbdcsi serve's --state-dir")
      ->capture_default_str();
  app.add_option("--data-dir", flags.data_dir, "rbdcsi serve's --data-dir (loop mapper)")
      ->capture_default_str();
  app.add_option("--rbd-program", flags.rbd_program, "The rbd CLI (krbd mapper)")
      ->capture_default_str();
  app.add_option("--cri-endpoint", flags.cri_endpoint,
                 "The container runtime's CRI socket, to name holders' pods (namespace/name); "
                 "empty: by pod uid only")
      ->capture_default_str();
  app.add_flag("--json", flags.json, "Print JSON instead of a table");
}

namespace {

// The volumes rbdcsi serve recorded under STATE_DIR/volumes; a note when there is no such
// directory.
absl::Status AddRecordedVolumes(const std::string& state_dir, DoctorInputs& inputs,
                                std::vector<std::string>& notes) {
  RecordStore records(state_dir + "/volumes");
  std::error_code ec;
  if (!std::filesystem::exists(records.dir(), ec)) {
    notes.push_back(absl::StrCat("no ", records.dir(), ": no volume records"));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(const std::vector<VolumeRecord> list, records.List());
  for (const VolumeRecord& r : list) {
    inputs.volumes.push_back({r.volume_id,
                              r.mapper,
                              r.device.path,
                              {r.device.major, r.device.minor},
                              r.staging_path,
                              r.staging_peer_group,
                              r.staging_mount_id});
  }
  return absl::OkStatus();
}

// What every mapper has mapped on this node; a note for each that cannot list its devices.
absl::Status AddMappings(const DoctorFlags& flags, CommandRunner& runner, DoctorInputs& inputs,
                         std::vector<std::string>& notes) {
  MapperEnv env;
  env.data_dir = flags.data_dir;
  env.rbd_program = flags.rbd_program;
  env.runner = &runner;
  MapperRegistry mappers;
  RETURN_IF_ERROR(RegisterMappers(env, &mappers));
  for (Mapper* mapper : mappers.All()) {
    absl::StatusOr<std::vector<MappedDevice>> mapped = mapper->List();
    if (!mapped.ok()) {
      notes.push_back(absl::StrCat("mapper ", AsAbsl(mapper->Name()), ": cannot list its devices (",
                                   mapped.status().message(), "); its mappings were not checked"));
      continue;
    }
    inputs.listed_mappers.emplace_back(mapper->Name());
    for (const MappedDevice& d : *mapped) {
      inputs.mappings.push_back(
          {std::string(mapper->Name()), d.path, {d.major, d.minor}, d.image.ToString()});
    }
  }
  return absl::OkStatus();
}

}  // namespace

int RunDoctor(const DoctorFlags& flags) {
  std::optional<ContainerNameSource> ask;
  if (!flags.cri_endpoint.empty()) {
    absl::StatusOr<ContainerNameSource> source = CriNameSource(flags.cri_endpoint);
    if (!source.ok()) {
      std::cerr << "rbdcsi doctor: --cri-endpoint: " << source.status().message() << "\n";
      return 2;
    }
    ask = *std::move(source);
  }
  DoctorInputs inputs;
  inputs.kubelet_dir = flags.kubelet_dir;
  std::vector<std::string> notes;
  std::unique_ptr<CommandRunner> runner = NewRealCommandRunner();
  std::unique_ptr<ProcFs> procfs = NewRealProcFs();
  absl::StatusOr<DoctorReport> report = [&]() -> absl::StatusOr<DoctorReport> {
    RETURN_IF_ERROR(AddRecordedVolumes(flags.state_dir, inputs, notes));
    RETURN_IF_ERROR(AddMappings(flags, *runner, inputs, notes));
    return RunDoctorChecks(inputs, *procfs);
  }();
  if (!report.ok()) {
    std::cerr << "rbdcsi doctor: " << report.status().message() << "\n";
    return 2;
  }
  if (ask.has_value()) {
    NameHazardPods(*ask, *report);
  } else if (std::any_of(report->hazards.begin(), report->hazards.end(),
                         [](const Hazard& h) { return !h.container.container_id.empty(); })) {
    notes.push_back("no --cri-endpoint: pods are named by uid only");
  }
  report->notes.insert(report->notes.begin(), notes.begin(), notes.end());
  if (flags.json) {
    std::cout << DoctorToJson(*report).dump(2) << "\n";
  } else {
    std::cout << FormatDoctorTable(*report);
  }
  return report->hazards.empty() ? 0 : 1;
}

}  // namespace rbdcsi
