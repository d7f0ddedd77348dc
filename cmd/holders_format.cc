#include "cmd/holders_format.h"

#include <algorithm>
#include <array>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "driver/holders_message.h"

namespace rbdcsi {
namespace {

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
      return StackedDeviceName(h.stacked);
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

// One holder: what every holder has, its process if any, and its kind's own fields.
nlohmann::json HolderToJson(const Holder& h) {
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
  return j;
}

}  // namespace

std::string FormatHoldersTable(const HolderReport& report) {
  if (report.holders.empty()) return "";
  using Row = std::array<std::string, 8>;
  std::vector<Row> rows = {{"KIND", "PID", "COMMAND", "CONTAINER", "POD", "NAMESPACE",
                            "MOUNT POINT / FILE", "PROPAGATION"}};
  for (const Holder& h : report.holders) {
    rows.push_back({std::string(HolderKindName(h.kind)), PidCell(h), Cell(h.comm),
                    Cell(ShortContainerId(h.container.container_id)), Cell(h.container.pod_uid),
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

nlohmann::json HoldersToJson(std::string_view device, const HolderReport& report) {
  nlohmann::json holders = nlohmann::json::array();
  for (const Holder& h : report.holders) {
    holders.push_back(HolderToJson(h));
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
