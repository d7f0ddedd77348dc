#include "mounter/holders_format.h"

#include <algorithm>
#include <array>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

constexpr size_t kMaxClauses = 8;
constexpr char kEllipsis[] = "\u2026";
constexpr char kDash[] = " \u2014 ";

std::string ShortId(const std::string& id) { return id.size() > 12 ? id.substr(0, 12) : id; }

std::string Cell(const std::string& s) { return s.empty() ? "-" : s; }

std::string PidCell(const Holder& h) {
  if (h.pid == 0) return "-";
  if (h.tid != 0) return absl::StrCat(h.pid, "/", h.tid);
  return absl::StrCat(h.pid);
}

std::string NamespaceCell(const Holder& h) {
  if (h.mount_namespace == 0 || h.kind != HolderKind::kMount) return "-";
  return absl::StrCat(h.mount_namespace, h.host_namespace ? " (host)" : "");
}

std::string WhereCell(const Holder& h) {
  switch (h.kind) {
    case HolderKind::kMount:
      return h.mount_point;
    case HolderKind::kOpenDevice:
    case HolderKind::kFileOnFilesystem:
      return absl::StrCat(h.file, h.path.empty() ? "" : absl::StrCat(": ", h.path),
                          h.other_files > 0 ? absl::StrCat(" (+", h.other_files, " more)") : "");
    case HolderKind::kStackedDevice:
      return h.stacked.dm_name.empty() ? h.stacked.name
                                       : absl::StrCat(h.stacked.name, " (", h.stacked.dm_name, ")");
    case HolderKind::kSwap:
      return h.swap_path;
  }
  return "";
}

std::string PropagationCell(const Holder& h) {
  std::string cell(PropagationClassName(h.propagation));
  if (h.exiting) cell = cell.empty() ? "exiting" : cell + ",exiting";
  if (h.kind == HolderKind::kMount && !h.propagation_tags.empty()) {
    absl::StrAppend(&cell, " (", absl::StrJoin(h.propagation_tags, " "), ")");
  }
  return cell;
}

// "pid 21839 (node_exporter, container 3f2a9c7f1955…, pod 7c1e2f3a-…)", and with the names
// a ContainerNamer found: "pid 21839 (node_exporter, container node-exporter 3f2a9c7f1955…,
// pod monitoring/node-exporter-x7k2p 7c1e2f3a-…)"
std::string Who(const Holder& h) {
  std::string who =
      h.tid != 0 ? absl::StrCat("thread ", h.tid, " of pid ", h.pid) : absl::StrCat("pid ", h.pid);
  std::vector<std::string> about;
  if (!h.comm.empty()) about.push_back(h.comm);
  const ContainerIdentity& c = h.container;
  if (!c.container_id.empty()) {
    about.push_back(absl::StrCat("container ", c.container_name,
                                 c.container_name.empty() ? "" : " ", ShortId(c.container_id),
                                 kEllipsis));
  }
  if (!c.pod_name.empty()) {
    about.push_back(absl::StrCat("pod ", c.pod_namespace, "/", c.pod_name,
                                 c.pod_uid.empty() ? "" : " ", c.pod_uid));
  } else if (!c.pod_uid.empty()) {
    about.push_back(absl::StrCat("pod ", c.pod_uid));
  }
  if (h.exiting) about.push_back("exiting");
  if (!about.empty()) absl::StrAppend(&who, " (", absl::StrJoin(about, ", "), ")");
  return who;
}

// LVM names its dm devices VG-LV with '-' inside either name doubled.
std::string LvmName(const std::string& dm_name) {
  for (size_t i = 0; i < dm_name.size(); ++i) {
    if (dm_name[i] != '-') continue;
    if (i + 1 < dm_name.size() && dm_name[i + 1] == '-') {
      ++i;
      continue;
    }
    auto undouble = [](std::string s) {
      for (size_t p; (p = s.find("--")) != std::string::npos;) s.erase(p, 1);
      return s;
    };
    return absl::StrCat(undouble(dm_name.substr(0, i)), "/", undouble(dm_name.substr(i + 1)));
  }
  return dm_name;
}

std::string StackedFix(const StackedDevice& s) {
  if (s.dm_name.empty()) {
    if (absl::StartsWith(s.name, "md")) return absl::StrCat("stop it: mdadm --stop /dev/", s.name);
    return absl::StrCat("remove /dev/", s.name, " first");
  }
  if (absl::StartsWith(s.dm_uuid, "LVM-")) {
    return absl::StrCat("deactivate it: lvchange -an ", LvmName(s.dm_name));
  }
  if (absl::StartsWith(s.dm_uuid, "CRYPT-")) {
    return absl::StrCat("close it: cryptsetup close ", s.dm_name);
  }
  return absl::StrCat("remove it: dmsetup remove ", s.dm_name);
}

std::string MountClause(const Holder& h) {
  if (h.pid == 0) {
    std::string clause = absl::StrCat("mounted at ", h.mount_point, " in mount namespace ",
                                      h.mount_namespace, ", which has no process left");
    if (h.namespace_pinned_at.empty()) {
      return absl::StrCat(clause,
                          " (kept alive by a bind-mounted or open namespace file), propagation ",
                          AsAbsl(PropagationClassName(h.propagation)), kDash,
                          "find the pin with `findmnt -t nsfs` and unmount it");
    }
    return absl::StrCat(clause, " (kept alive by its namespace file bind-mounted at ",
                        h.namespace_pinned_at, " in mount namespace ", h.namespace_pinned_in,
                        "), propagation ", AsAbsl(PropagationClassName(h.propagation)), kDash,
                        "unmount that pin: umount ", h.namespace_pinned_at);
  }
  if (h.host_namespace) {
    if (h.propagation == PropagationClass::kPending) {
      return absl::StrCat("still mounted at ", h.mount_point, " in the host mount namespace");
    }
    return absl::StrCat("also mounted at ", h.mount_point, " in the host mount namespace", kDash,
                        "unmount it if nothing should use it there");
  }
  std::string clause = absl::StrCat("mounted at ", h.mount_point, " in mount namespace ",
                                    h.mount_namespace, " of ", Who(h), ", propagation ");
  if (h.propagation == PropagationClass::kPending) {
    return absl::StrCat(clause, "pending (a slave of the host mount)", kDash,
                        "the host unmount releases it unless something inside that namespace "
                        "still uses it");
  }
  absl::StrAppend(&clause, "private", kDash, "it will not be released by the host unmount; ");
  if (!h.container.pod_uid.empty()) {
    return absl::StrCat(clause, "give that pod's host mount mountPropagation: HostToContainer ",
                        "or restart it");
  }
  if (!h.container.container_id.empty()) {
    return absl::StrCat(clause, "give that container's host mount rslave propagation or ",
                        "restart it");
  }
  return absl::StrCat(clause, "stop that process or unmount it in its namespace (nsenter -t ",
                      h.tid != 0 ? h.tid : h.pid, " -m umount ", h.mount_point, ")");
}

std::string FileClause(const Holder& h) {
  std::string what;
  if (h.file == "cwd") {
    what = "its current directory";
  } else if (h.file == "root") {
    what = "its root directory";
  } else if (h.file == "exe") {
    what = "its executable";
  } else {
    what = absl::StrCat("an open file (", h.file, ")");
  }
  return absl::StrCat(Who(h), " has ", what, h.path.empty() ? "" : absl::StrCat(" ", h.path),
                      h.other_files > 0 ? absl::StrCat(" and ", h.other_files, " more files") : "",
                      " on the device's filesystem (a lazy unmount leaves such users behind)",
                      kDash, "stop that process or move it off the filesystem");
}

}  // namespace

std::string DescribeHolder(const Holder& h) {
  switch (h.kind) {
    case HolderKind::kMount:
      return MountClause(h);
    case HolderKind::kOpenDevice:
      return absl::StrCat("opened by ", Who(h), " as ", h.file,
                          h.path.empty() ? "" : absl::StrCat(" (", h.path, ")"),
                          h.other_files > 0 ? absl::StrCat(" and ", h.other_files, " more") : "",
                          kDash, "stop that process or make it close the device");
    case HolderKind::kFileOnFilesystem:
      return FileClause(h);
    case HolderKind::kStackedDevice:
      return absl::StrCat("used by the stacked device ", WhereCell(h), kDash,
                          StackedFix(h.stacked));
    case HolderKind::kSwap:
      return absl::StrCat("used as active swap (", h.swap_path, ")", kDash, "swapoff ",
                          h.swap_path);
  }
  return "held";
}

std::string DescribeHolders(std::string_view volume_id, std::string_view device, unsigned major,
                            unsigned minor, const HolderReport& report) {
  std::string message = absl::StrCat("volume ", AsAbsl(volume_id), ": ", AsAbsl(device), " (",
                                     major, ":", minor, ")");
  if (report.holders.empty()) {
    return absl::StrCat(message,
                        " is busy but no holder was found; the kernel may still be releasing it, "
                        "the next attempt will retry the unmap");
  }
  absl::StrAppend(&message, " is still in use and was not unmapped: ");
  std::vector<std::string> clauses;
  for (size_t i = 0; i < report.holders.size() && i < kMaxClauses; ++i) {
    clauses.push_back(DescribeHolder(report.holders[i]));
  }
  absl::StrAppend(&message, absl::StrJoin(clauses, "; "));
  if (report.holders.size() > kMaxClauses) {
    absl::StrAppend(&message, "; and ", report.holders.size() - kMaxClauses,
                    " more holders (`rbdcsi holders ", AsAbsl(device), "` lists them all)");
  }
  return absl::StrCat(message, ".");
}

std::string FormatHoldersTable(const HolderReport& report) {
  if (report.holders.empty()) return "";
  using Row = std::array<std::string, 8>;
  std::vector<Row> rows = {{"KIND", "PID", "COMMAND", "CONTAINER", "POD", "NAMESPACE",
                            "MOUNT POINT / FILE", "PROPAGATION"}};
  for (const Holder& h : report.holders) {
    rows.push_back({std::string(HolderKindName(h.kind)), PidCell(h), Cell(h.comm),
                    Cell(ShortId(h.container.container_id)), Cell(h.container.pod_uid),
                    NamespaceCell(h), Cell(WhereCell(h)), Cell(PropagationCell(h))});
  }
  std::array<size_t, 8> widths{};
  for (const Row& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string FormatScanSummary(const HolderReport& report) {
  std::string summary = absl::StrFormat(
      "scanned %d processes and %d mount namespaces in %.1f ms; namespaces without a process: %s",
      report.processes_scanned, report.namespaces_scanned,
      static_cast<double>(report.duration.count()) / 1000.0,
      report.method == NamespaceMethod::kKernel ? "kernel enumeration (nsfs ioctls, listmount)"
                                                : "bind-mounted namespace files only");
  if (!report.method_note.empty()) absl::StrAppend(&summary, " (", report.method_note, ")");
  return summary;
}

nlohmann::json HoldersToJson(std::string_view device, const HolderReport& report) {
  nlohmann::json holders = nlohmann::json::array();
  for (const Holder& h : report.holders) {
    nlohmann::json j = {{"kind", HolderKindName(h.kind)},
                        {"releases_by_itself", h.ReleasesByItself()}};
    if (h.pid != 0) {
      j["pid"] = h.pid;
      if (h.tid != 0) j["tid"] = h.tid;
      j["command"] = h.comm;
      j["cmdline"] = h.cmdline;
      j["container_id"] = h.container.container_id;
      j["pod_uid"] = h.container.pod_uid;
      j["runtime"] = h.container.runtime;
      if (!h.container.pod_name.empty()) {
        j["pod_namespace"] = h.container.pod_namespace;
        j["pod_name"] = h.container.pod_name;
        j["container_name"] = h.container.container_name;
      }
      j["exiting"] = h.exiting;
    }
    switch (h.kind) {
      case HolderKind::kMount:
        j["mount_namespace"] = h.mount_namespace;
        j["host_namespace"] = h.host_namespace;
        j["mount_point"] = h.mount_point;
        j["mount_id"] = h.mount_id;
        j["propagation_tags"] = h.propagation_tags;
        j["propagation"] = PropagationClassName(h.propagation);
        if (h.pid == 0) {
          j["namespace_pinned_at"] = h.namespace_pinned_at;
          j["namespace_pinned_in"] = h.namespace_pinned_in;
        } else {
          j["processes_in_namespace"] = h.processes_in_namespace;
        }
        break;
      case HolderKind::kOpenDevice:
      case HolderKind::kFileOnFilesystem:
        j["mount_namespace"] = h.mount_namespace;
        j["file"] = h.file;
        j["path"] = h.path;
        j["other_files"] = h.other_files;
        break;
      case HolderKind::kStackedDevice:
        j["stacked_device"] = {{"name", h.stacked.name},
                               {"major", h.stacked.number.major},
                               {"minor", h.stacked.number.minor},
                               {"dm_name", h.stacked.dm_name},
                               {"dm_uuid", h.stacked.dm_uuid}};
        break;
      case HolderKind::kSwap:
        j["swap_path"] = h.swap_path;
        break;
    }
    j["description"] = DescribeHolder(h);
    holders.push_back(std::move(j));
  }
  nlohmann::json partitions = nlohmann::json::array();
  for (const DeviceNumber& p : report.partitions) {
    partitions.push_back(absl::StrCat(p.major, ":", p.minor));
  }
  return {{"device", std::string(device)},
          {"major", report.device.major},
          {"minor", report.device.minor},
          {"partitions", partitions},
          {"held", report.held()},
          {"only_self_releasing", report.OnlySelfReleasing()},
          {"method", NamespaceMethodName(report.method)},
          {"method_note", report.method_note},
          {"processes_scanned", report.processes_scanned},
          {"namespaces_scanned", report.namespaces_scanned},
          {"duration_us", report.duration.count()},
          {"holders", holders}};
}

}  // namespace rbdcsi
