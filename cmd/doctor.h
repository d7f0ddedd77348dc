// `rbdcsi doctor`: finds what will make a volume stick before any unstage fails.
//
// Hazards: a kubelet directory that is not on a shared mount (propagation cannot work); mount
// namespaces holding a private (non-slave) copy of the kubelet directory or of a staged volume
// (tomorrow's holders, named with process, container and pod); mappings that no volume record
// names; records whose device is no longer mapped.
#ifndef RBDCSI_CMD_DOCTOR_H_
#define RBDCSI_CMD_DOCTOR_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "base/device_number.h"
#include "driver/cri_namer.h"
#include "holders/cgroup.h"
#include "holders/holders.h"
#include "holders/procfs.h"
#include "nlohmann/json.hpp"

namespace rbdcsi {

// A volume as its record describes it.
struct DoctorVolume {
  std::string volume_id;
  std::string mapper;
  std::string device_path;  // empty when the record names no device yet
  DeviceNumber device;
  std::string staging_path;
  int staging_peer_group = 0;
  int staging_mount_id = 0;
};

// A device a mapper reports mapped.
struct DoctorMapping {
  std::string mapper;
  std::string device_path;
  DeviceNumber device;
  std::string image;
};

struct DoctorInputs {
  std::string kubelet_dir;
  std::vector<DoctorVolume> volumes;
  std::vector<DoctorMapping> mappings;
  std::vector<std::string> listed_mappers;  // mappers whose List() worked
};

enum class HazardKind {
  kKubeletDirNotShared,
  kPrivateKubeletCopy,
  kPrivateVolumeCopy,
  kMappingWithoutRecord,
  kRecordWithoutMapping,
};
std::string_view HazardKindName(HazardKind kind);  // "kubelet-dir-not-shared", ...

struct Hazard {
  HazardKind kind = HazardKind::kKubeletDirNotShared;
  std::string subject;  // the kubelet dir, a volume id or a device
  // Set for namespace hazards: who owns the namespace (pid 0: no process, see pinned_at).
  pid_t pid = 0;
  std::string comm;
  std::string cmdline;
  ContainerIdentity container;
  uint64_t mount_namespace = 0;
  std::string mount_point;  // inside that namespace
  std::string propagation;  // its tags, e.g. "shared:812" or "" (private)
  std::string pinned_at;
  std::string fix;
};

struct DoctorReport {
  std::vector<Hazard> hazards;
  std::vector<std::string> notes;  // checks that could not run, and why
  int namespaces_scanned = 0;
  int volumes_checked = 0;
  int mappings_checked = 0;
};

// Runs every check. Only an unreadable /proc is an error (INTERNAL); a check that cannot run
// (e.g. no kubelet directory) adds a note instead.
absl::StatusOr<DoctorReport> RunDoctorChecks(const DoctorInputs& inputs, ProcFs& procfs);

// A container's Kubernetes names by container id: QueryContainerNames on the runtime's CRI
// socket in production. NOT_FOUND: the runtime does not know it as a pod's container.
using ContainerNameSource =
    std::function<absl::StatusOr<ContainerNames>(const std::string& container_id)>;

// Names the pods (namespace/name) and containers of the hazards' processes through `ask`, once
// per container. A process the runtime does not name keeps only its pod uid, and the report gets
// a note saying so and why; after the runtime fails (anything but NOT_FOUND) it is not asked
// again.
void NameHazardPods(const ContainerNameSource& ask, DoctorReport& report);

std::string FormatDoctorTable(const DoctorReport& report);
nlohmann::json DoctorToJson(const DoctorReport& report);

struct DoctorFlags {
  std::string kubelet_dir = "/var/lib/kubelet";
  std::string state_dir = "/var/lib/rbdcsi/state";
  std::string data_dir = "/var/lib/rbdcsi/data";
  std::string rbd_program = "rbd";
  std::string cri_endpoint = "unix:///run/containerd/containerd.sock";  // "": pods by uid only
  bool json = false;
};

void AddDoctorFlags(CLI::App& app, DoctorFlags& flags);

// Reads the records and the mappers' lists, runs the checks, prints the table (or JSON).
// Returns the exit code: 0 without hazards, 1 with hazards, 2 on error.
int RunDoctor(const DoctorFlags& flags);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_DOCTOR_H_
