#include "driver/holders_message.h"

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
                                    h.mount_namespace, " of ", DescribeWho(h), ", propagation ");
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
  return absl::StrCat(DescribeWho(h), " has ", what,
                      h.path.empty() ? "" : absl::StrCat(" ", h.path),
                      h.other_files > 0 ? absl::StrCat(" and ", h.other_files, " more files") : "",
                      " on the device's filesystem (a lazy unmount leaves such users behind)",
                      kDash, "stop that process or move it off the filesystem");
}

}  // namespace

// "pid 21839 (node_exporter, container 3f2a9c7f1955…, pod 7c1e2f3a-…)", and with the names
// a ContainerNamer found: "pid 21839 (node_exporter, container node-exporter 3f2a9c7f1955…,
// pod monitoring/node-exporter-x7k2p 7c1e2f3a-…)"
std::string DescribeWho(const Holder& h) {
  std::string who =
      h.tid != 0 ? absl::StrCat("thread ", h.tid, " of pid ", h.pid) : absl::StrCat("pid ", h.pid);
  std::vector<std::string> about;
  if (!h.comm.empty()) about.push_back(h.comm);
  const ContainerIdentity& c = h.container;
  if (!c.container_id.empty()) {
    about.push_back(absl::StrCat("container ", c.container_name,
                                 c.container_name.empty() ? "" : " ",
                                 ShortContainerId(c.container_id), kEllipsis));
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

std::string ShortContainerId(const std::string& id) {
  return id.size() > 12 ? id.substr(0, 12) : id;
}

std::string StackedDeviceName(const StackedDevice& s) {
  return s.dm_name.empty() ? s.name : absl::StrCat(s.name, " (", s.dm_name, ")");
}

std::string DescribeHolder(const Holder& h) {
  switch (h.kind) {
    case HolderKind::kMount:
      return MountClause(h);
    case HolderKind::kOpenDevice:
      return absl::StrCat("opened by ", DescribeWho(h), " as ", h.file,
                          h.path.empty() ? "" : absl::StrCat(" (", h.path, ")"),
                          h.other_files > 0 ? absl::StrCat(" and ", h.other_files, " more") : "",
                          kDash, "stop that process or make it close the device");
    case HolderKind::kFileOnFilesystem:
      return FileClause(h);
    case HolderKind::kStackedDevice:
      return absl::StrCat("used by the stacked device ", StackedDeviceName(h.stacked), kDash,
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

}  // namespace rbdcsi
