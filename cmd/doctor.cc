#include "cmd/doctor.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "mounter/mountinfo.h"

namespace rbdcsi {
namespace {

constexpr char kHostToContainerFix[] =
    "give that pod's host mount mountPropagation: HostToContainer and restart it (or stop the "
    "process)";

bool IsUnder(const std::string& path, const std::string& dir) {
  if (dir == "/") return absl::StartsWith(path, "/");
  return path == dir || absl::StartsWith(path, dir + "/");
}

// The mount that shows `path` in `table`: the deepest mount point above it, topmost when stacked.
const MountInfo* MountShowing(const std::vector<MountInfo>& table, const std::string& path) {
  const MountInfo* best = nullptr;
  for (const MountInfo& m : table) {
    if (!IsUnder(path, m.mount_point)) continue;
    if (best == nullptr || m.mount_point.size() >= best->mount_point.size()) best = &m;
  }
  return best;
}

// `path` (under mount.mount_point) as a path inside mount's filesystem.
std::string PathInFilesystem(const MountInfo& mount, const std::string& path) {
  std::string rest = path.substr(mount.mount_point == "/" ? 0 : mount.mount_point.size());
  if (mount.root == "/") return rest.empty() ? "/" : rest;
  return mount.root + rest;
}

struct NamespaceOwner {
  pid_t pid = 0;
  std::string text;  // its mountinfo
};

void FillOwner(ProcFs& procfs, pid_t pid, Hazard& h) {
  h.pid = pid;
  if (auto comm = procfs.ReadProcessFile(pid, "comm"); comm.ok()) {
    h.comm = *comm;
    while (!h.comm.empty() && h.comm.back() == '\n') h.comm.pop_back();
  }
  if (auto cmdline = procfs.ReadProcessFile(pid, "cmdline"); cmdline.ok()) {
    std::string c = *cmdline;
    while (!c.empty() && c.back() == '\0') c.pop_back();
    for (char& ch : c) {
      if (ch == '\0') ch = ' ';
    }
    h.cmdline = c;
  }
  if (auto cgroup = procfs.ReadProcessFile(pid, "cgroup"); cgroup.ok()) {
    h.container = IdentifyContainer(*cgroup);
  }
}

// Private copies of the kubelet directory in other mount namespaces.
void CheckKubeletCopies(const MountInfo& host, const std::string& kubelet_dir,
                        const std::map<uint64_t, NamespaceOwner>& namespaces, uint64_t own_ns,
                        ProcFs& procfs, DoctorReport& report) {
  const std::string in_fs = PathInFilesystem(host, kubelet_dir);
  const std::optional<int> host_group = host.shared_peer_group();
  for (const auto& [ns, owner] : namespaces) {
    if (ns == own_ns) continue;
    absl::StatusOr<std::vector<MountInfo>> table = ParseMountInfo(owner.text);
    if (!table.ok()) continue;
    for (const MountInfo& m : *table) {
      // A mount of the same filesystem whose root holds the whole kubelet directory, and that
      // is what shows it there (not covered by a deeper mount, such as a slave copy).
      if (m.major != host.major || m.minor != host.minor || !IsUnder(in_fs, m.root)) continue;
      const std::string rest = m.root == "/" ? in_fs : in_fs.substr(m.root.size());
      const std::string shown_at = m.mount_point == "/" ? rest : m.mount_point + rest;
      if (MountShowing(*table, shown_at.empty() ? "/" : shown_at) != &m) continue;
      if (m.master_peer_group().has_value()) continue;  // a slave: unmounts reach it
      if (host_group.has_value() && m.shared_peer_group() == host_group) continue;  // a peer
      Hazard h;
      h.kind = HazardKind::kPrivateKubeletCopy;
      h.subject = kubelet_dir;
      h.mount_namespace = ns;
      h.mount_point = m.mount_point;
      h.propagation = absl::StrJoin(m.optional_fields, " ");
      FillOwner(procfs, owner.pid, h);
      h.fix = absl::StrCat(
          "every volume staged while this namespace lives is copied into it and will not "
          "unstage; ",
          kHostToContainerFix);
      report.hazards.push_back(std::move(h));
    }
  }
}

// Private copies of staged volumes: the holder scan, mounts only.
void CheckVolumeCopies(const DoctorInputs& inputs, ProcFs& procfs, DoctorReport& report) {
  HolderScanner scanner(procfs);
  for (const DoctorVolume& v : inputs.volumes) {
    if (v.device_path.empty()) continue;
    ++report.volumes_checked;
    ScanOptions options;
    options.scan_process_files = false;
    if (v.staging_peer_group != 0) options.host_peer_group = v.staging_peer_group;
    if (v.staging_mount_id != 0) options.host_mount_id = v.staging_mount_id;
    absl::StatusOr<HolderReport> scan = scanner.Scan(v.device.major, v.device.minor, options);
    if (!scan.ok()) {
      report.notes.push_back(absl::StrCat("volume ", v.volume_id, ": ", scan.status().message()));
      continue;
    }
    for (const Holder& holder : scan->holders) {
      if (holder.kind != HolderKind::kMount || holder.host_namespace ||
          holder.propagation != PropagationClass::kPrivate) {
        continue;
      }
      Hazard h;
      h.kind = HazardKind::kPrivateVolumeCopy;
      h.subject = v.volume_id;
      h.pid = holder.pid;
      h.comm = holder.comm;
      h.cmdline = holder.cmdline;
      h.container = holder.container;
      h.mount_namespace = holder.mount_namespace;
      h.mount_point = holder.mount_point;
      h.propagation = absl::StrJoin(holder.propagation_tags, " ");
      h.pinned_at = holder.namespace_pinned_at;
      h.fix = holder.pid != 0
                  ? absl::StrCat(v.device_path, " will not unmap when volume ", v.volume_id,
                                 " is unstaged; stop pid ", holder.pid,
                                 " or unmount the copy in its namespace (nsenter -t ", holder.pid,
                                 " -m umount ", holder.mount_point, "), and ", kHostToContainerFix)
                  : absl::StrCat(v.device_path, " will not unmap: a namespace without processes ",
                                 "holds it; unmount the file that pins it",
                                 holder.namespace_pinned_at.empty()
                                     ? std::string()
                                     : " (" + holder.namespace_pinned_at + ")");
      report.hazards.push_back(std::move(h));
    }
  }
}

void CheckRecordsAgainstMappings(const DoctorInputs& inputs, DoctorReport& report) {
  auto listed = [&inputs](const std::string& mapper) {
    for (const std::string& m : inputs.listed_mappers) {
      if (m == mapper) return true;
    }
    return false;
  };
  for (const DoctorMapping& m : inputs.mappings) {
    ++report.mappings_checked;
    bool recorded = false;
    for (const DoctorVolume& v : inputs.volumes)
      recorded |= !v.device_path.empty() && v.device == m.device;
    if (recorded) continue;
    Hazard h;
    h.kind = HazardKind::kMappingWithoutRecord;
    h.subject = m.device_path;
    h.fix = absl::StrCat(m.mapper, " maps ", m.image, " at ", m.device_path,
                         " but no volume record names it (a crashed stage, or mapped by hand): "
                         "nothing will unmap it; check `rbdcsi holders ",
                         m.device_path, "` and unmap it when it is free");
    report.hazards.push_back(std::move(h));
  }
  for (const DoctorVolume& v : inputs.volumes) {
    if (v.device_path.empty() || !listed(v.mapper)) continue;
    bool mapped = false;
    for (const DoctorMapping& m : inputs.mappings) mapped |= m.device == v.device;
    if (mapped) continue;
    Hazard h;
    h.kind = HazardKind::kRecordWithoutMapping;
    h.subject = v.volume_id;
    h.fix = absl::StrCat("the record names ", v.device_path,
                         ", which is no longer mapped; the next NodeUnstageVolume of ", v.volume_id,
                         " removes the record");
    report.hazards.push_back(std::move(h));
  }
}

}  // namespace

std::string_view HazardKindName(HazardKind kind) {
  switch (kind) {
    case HazardKind::kKubeletDirNotShared:
      return "kubelet-dir-not-shared";
    case HazardKind::kPrivateKubeletCopy:
      return "private-kubelet-dir-copy";
    case HazardKind::kPrivateVolumeCopy:
      return "private-volume-copy";
    case HazardKind::kMappingWithoutRecord:
      return "mapping-without-record";
    case HazardKind::kRecordWithoutMapping:
      return "record-without-mapping";
  }
  return "unknown";
}

absl::StatusOr<DoctorReport> RunDoctorChecks(const DoctorInputs& inputs, ProcFs& procfs) {
  DoctorReport report;
  std::vector<pid_t> pids;
  RETURN_IF_ERROR(procfs.ListProcesses(&pids));
  std::map<uint64_t, NamespaceOwner> namespaces;  // lowest pid per namespace
  for (pid_t pid : pids) {
    absl::StatusOr<uint64_t> ns = procfs.MountNamespaceOf(pid, 0);
    if (!ns.ok() || namespaces.count(*ns) > 0) continue;
    NamespaceOwner owner{pid, ""};
    if (!procfs.ReadMountInfo(pid, 0, &owner.text).ok()) continue;
    namespaces.emplace(*ns, std::move(owner));
  }
  report.namespaces_scanned = static_cast<int>(namespaces.size());
  absl::StatusOr<uint64_t> own_ns = procfs.MountNamespaceOf(procfs.SelfPid(), 0);
  std::string own_text;
  RETURN_IF_ERROR(procfs.ReadMountInfo(procfs.SelfPid(), 0, &own_text));
  ASSIGN_OR_RETURN(std::vector<MountInfo> own_table, ParseMountInfo(own_text));

  const MountInfo* host = MountShowing(own_table, inputs.kubelet_dir);
  if (inputs.kubelet_dir.empty() || host == nullptr) {
    report.notes.push_back(absl::StrCat("no mount shows the kubelet directory '",
                                        inputs.kubelet_dir, "': its checks were skipped"));
  } else {
    if (!host->shared_peer_group().has_value()) {
      Hazard h;
      h.kind = HazardKind::kKubeletDirNotShared;
      h.subject = inputs.kubelet_dir;
      h.mount_point = host->mount_point;
      h.propagation = absl::StrJoin(host->optional_fields, " ");
      h.fix = absl::StrCat("the mount at ", host->mount_point,
                           " is not shared: staging mounts cannot propagate to pods, nor their "
                           "unmounts to copies; make it shared (mount --make-rshared ",
                           host->mount_point, ") before kubelet starts");
      report.hazards.push_back(std::move(h));
    }
    CheckKubeletCopies(*host, inputs.kubelet_dir, namespaces, own_ns.ok() ? *own_ns : 0, procfs,
                       report);
  }
  CheckVolumeCopies(inputs, procfs, report);
  CheckRecordsAgainstMappings(inputs, report);
  return report;
}

void NameHazardPods(const ContainerNameSource& ask, DoctorReport& report) {
  std::map<std::string, absl::StatusOr<ContainerNames>> asked;
  absl::Status runtime_error;  // once set, the runtime is not asked again
  int unnamed = 0;
  for (Hazard& h : report.hazards) {
    const std::string& id = h.container.container_id;
    if (id.empty()) continue;
    auto it = asked.find(id);
    if (it == asked.end()) {
      absl::StatusOr<ContainerNames> names =
          runtime_error.ok() ? ask(id) : absl::StatusOr<ContainerNames>(runtime_error);
      if (!names.ok() && names.status().code() != absl::StatusCode::kNotFound) {
        runtime_error = names.status();
      }
      it = asked.emplace(id, std::move(names)).first;
    }
    if (!it->second.ok()) {
      ++unnamed;
      continue;
    }
    h.container.pod_namespace = it->second->pod_namespace;
    h.container.pod_name = it->second->pod_name;
    h.container.container_name = it->second->container_name;
  }
  if (unnamed == 0) return;
  std::string why;
  for (const auto& [id, names] : asked) {
    if (!names.ok()) why = std::string(names.status().message());
    if (!names.ok() && names.status().code() != absl::StatusCode::kNotFound) break;
  }
  report.notes.push_back(absl::StrCat(unnamed, " hazard(s) name their pod by uid only: ", why));
}

}  // namespace rbdcsi
