#include "holders/holders.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "holders/scan_parts.h"
#include "mounter/mountinfo.h"

namespace rbdcsi {

using holders_internal::Contains;
using holders_internal::DeviceText;
using holders_internal::FileDescription;
using holders_internal::Namespace;
using holders_internal::Pin;

// What one Scan() gathers on its way.
struct HolderScanner::ScanState {
  explicit ScanState(const ScanOptions& o) : options(o) {}
  const ScanOptions& options;
  HolderReport report;
  std::vector<DeviceNumber> devices;  // The device and its partitions.
  std::vector<std::string> needles;   // Their "major:minor", and nsfs's.
  std::optional<DeviceNumber> nsfs;
  std::optional<uint64_t> self_ns;
  std::map<uint64_t, Namespace> namespaces;  // Ordered by inode so that reports are stable.
  std::map<uint64_t, Pin> pins;              // Namespaces kept alive by a bind-mounted nsfs file.
  std::set<uint64_t> done;                   // Namespaces whose mount table was read.
  std::vector<Holder> holders;
  std::vector<MountInfo> matched;
};

void ForEachMountLineOf(std::string_view text, const std::vector<std::string>& devices,
                        const std::function<void(std::string_view)>& fn) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    const size_t s1 = line.find(' ');
    const size_t s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
    const size_t s3 = s2 == std::string_view::npos ? s2 : line.find(' ', s2 + 1);
    if (s3 == std::string_view::npos) continue;
    const std::string_view dev = line.substr(s2 + 1, s3 - s2 - 1);
    for (const std::string& d : devices) {
      if (dev == d) {
        fn(line);
        break;
      }
    }
  }
}

bool HolderReport::OnlySelfReleasing() const {
  return !holders.empty() && std::all_of(holders.begin(), holders.end(),
                                         [](const Holder& h) { return h.ReleasesByItself(); });
}

void HolderScanner::FindDevices(unsigned major, unsigned minor, ScanState& s) {
  s.report.device = {major, minor};
  if (auto partitions = procfs_.ListPartitions(s.report.device); partitions.ok()) {
    s.report.partitions = *std::move(partitions);
  }
  s.devices = {s.report.device};
  s.devices.insert(s.devices.end(), s.report.partitions.begin(), s.report.partitions.end());
  for (const DeviceNumber& d : s.devices) s.needles.push_back(DeviceText(d));
  if (auto dev = procfs_.NsfsDevice(); dev.ok()) {
    s.nsfs = *dev;
    s.needles.push_back(DeviceText(*dev));
  }
  if (auto ns = procfs_.MountNamespaceOf(procfs_.SelfPid(), 0); ns.ok()) s.self_ns = *ns;
}

void HolderScanner::AddFileHolders(pid_t pid, uint64_t ns, ScanState& s) {
  // One holder per process and kind; further matches only add to its count.
  size_t index[2] = {SIZE_MAX, SIZE_MAX};  // kOpenDevice, kFileOnFilesystem
  for (const ProcessFile& f : files_) {
    const bool on_device = f.block_device && Contains(s.devices, f.rdev);
    if (!on_device && !Contains(s.devices, f.dev)) continue;
    const int k = on_device ? 0 : 1;
    if (index[k] != SIZE_MAX) {
      ++s.holders[index[k]].other_files;
      continue;
    }
    Holder h;
    h.kind = on_device ? HolderKind::kOpenDevice : HolderKind::kFileOnFilesystem;
    h.pid = pid;
    h.mount_namespace = ns;
    h.file = FileDescription(f);
    if (auto path = procfs_.FilePath(pid, f); path.ok()) h.path = *std::move(path);
    index[k] = s.holders.size();
    s.holders.push_back(std::move(h));
  }
}

absl::Status HolderScanner::ScanProcesses(ScanState& s) {
  absl::Status listed = procfs_.ListProcesses(&pids_);
  if (!listed.ok()) return Annotate(listed, "cannot scan processes for holders");
  std::sort(pids_.begin(), pids_.end());
  const pid_t self = procfs_.SelfPid();
  const std::vector<pid_t>& excluded = s.options.exclude_pids;
  for (const pid_t pid : pids_) {
    const absl::StatusOr<uint64_t> ns = procfs_.MountNamespaceOf(pid, 0);
    if (!ns.ok()) continue;  // Gone.
    ++s.report.processes_scanned;
    bool kernel_thread = false;
    if (s.options.scan_process_files &&
        std::find(excluded.begin(), excluded.end(), pid) == excluded.end() &&
        procfs_.ListProcessFiles(pid, &files_).ok()) {
      // Kernel threads have no executable; their cwd and root are the host's "/".
      kernel_thread = std::none_of(files_.begin(), files_.end(), [](const ProcessFile& f) {
        return f.slot == ProcessFile::Slot::kExe;
      });
      if (!kernel_thread) AddFileHolders(pid, *ns, s);
    }
    Namespace& entry = s.namespaces[*ns];
    const bool weak = pid == self || kernel_thread;
    if (entry.pid == 0 || (entry.weak && !weak)) {
      entry.pid = pid;
      entry.tid = 0;
      entry.weak = weak;
    }
    ++entry.processes;
    AddThreadNamespaces(pid, *ns, s);
  }
  return absl::OkStatus();
}

void HolderScanner::AddThreadNamespaces(pid_t pid, uint64_t ns, ScanState& s) {
  // Threads share their process's namespace unless one called unshare(CLONE_NEWNS): look only
  // when there is more than one thread.
  const absl::StatusOr<int> threads = procfs_.ThreadCount(pid);
  if (!threads.ok() || *threads <= 1 || !procfs_.ListThreads(pid, &tids_).ok()) return;
  for (const pid_t tid : tids_) {
    if (tid == pid) continue;
    const absl::StatusOr<uint64_t> tns = procfs_.MountNamespaceOf(pid, tid);
    if (!tns.ok() || *tns == ns) continue;
    Namespace& t = s.namespaces[*tns];
    if (t.pid == 0) t = {pid, tid, 0, false};
    ++t.processes;
  }
}

void HolderScanner::AddMounts(uint64_t ns, const Namespace* entry,
                              const std::vector<MountInfo>& mounts, ScanState& s) {
  for (const MountInfo& m : mounts) {
    const DeviceNumber dev{m.major, m.minor};
    if (s.nsfs && dev == *s.nsfs) {
      if (auto pinned = holders_internal::PinnedNamespace(m)) {
        s.pins.emplace(*pinned, Pin{m.mount_point, ns, entry ? entry->pid : 0});
      }
    } else if (Contains(s.devices, dev)) {
      Holder h = holders_internal::MountHolder(m, ns);
      if (entry != nullptr) {
        h.pid = entry->pid;
        h.tid = entry->tid;
        h.processes_in_namespace = entry->processes;
      }
      s.holders.push_back(std::move(h));
    }
  }
  s.done.insert(ns);
  ++s.report.namespaces_scanned;
}

void HolderScanner::ScanKernelNamespaces(ScanState& s) {
  absl::StatusOr<std::vector<KernelMountNamespace>> kernel = procfs_.ListMountNamespaces();
  if (!kernel.ok()) {
    s.report.method_note = std::string(kernel.status().message());
    return;
  }
  s.report.method = NamespaceMethod::kKernel;
  std::vector<DeviceNumber> mount_devices = s.devices;
  if (s.nsfs) mount_devices.push_back(*s.nsfs);
  for (const KernelMountNamespace& k : *kernel) {
    absl::StatusOr<std::vector<MountInfo>> mounts = procfs_.ListNamespaceMounts(k, mount_devices);
    if (absl::IsUnimplemented(mounts.status())) {
      s.report.method = NamespaceMethod::kProc;
      s.report.method_note = std::string(mounts.status().message());
      return;
    }
    if (!mounts.ok()) continue;  // Gone meanwhile.
    const auto entry = s.namespaces.find(k.inode);
    AddMounts(k.inode, entry == s.namespaces.end() ? nullptr : &entry->second, *mounts, s);
  }
}

const std::vector<MountInfo>& HolderScanner::MatchingMounts(ScanState& s) {
  s.matched.clear();
  ForEachMountLineOf(text_, s.needles, [&s](std::string_view line) {
    if (absl::StatusOr<MountInfo> m = ParseMountInfoLine(line); m.ok()) {
      s.matched.push_back(*std::move(m));
    }
  });
  return s.matched;
}

void HolderScanner::ScanProcNamespaces(ScanState& s) {
  for (const auto& [ns, entry] : s.namespaces) {
    if (s.done.count(ns) || !procfs_.ReadMountInfo(entry.pid, entry.tid, &text_).ok()) continue;
    AddMounts(ns, &entry, MatchingMounts(s), s);
  }
  // Without the kernel's list, namespaces without a process are found only through their nsfs
  // file bind-mounted in a namespace we could read.
  if (s.report.method != NamespaceMethod::kProc) return;
  for (const auto& [ns, pin] : s.pins) {
    if (s.done.count(ns) || pin.pid == 0) continue;
    const std::string file = absl::StrCat("/proc/", pin.pid, "/root", pin.path);
    if (!procfs_.ReadMountInfoOfNamespaceFile(file, &text_).ok()) continue;
    AddMounts(ns, nullptr, MatchingMounts(s), s);
  }
}

void HolderScanner::AddDeviceHolders(ScanState& s) {
  if (auto stacked = procfs_.ListStackedDevices(s.report.device); stacked.ok()) {
    for (StackedDevice& d : *stacked) {
      Holder h;
      h.kind = HolderKind::kStackedDevice;
      h.stacked = std::move(d);
      s.holders.push_back(std::move(h));
    }
  }
  holders_internal::ScanSwaps(procfs_, s.devices, s.holders);
}

void HolderScanner::AddDetails(ScanState& s) {
  std::unordered_map<pid_t, holders_internal::ProcessDetails> details;
  for (Holder& h : s.holders) {
    if (s.self_ns && h.mount_namespace == *s.self_ns && h.kind == HolderKind::kMount) {
      h.host_namespace = true;
    }
    if (h.kind == HolderKind::kMount && h.pid == 0) {
      if (auto pin = s.pins.find(h.mount_namespace); pin != s.pins.end()) {
        h.namespace_pinned_at = pin->second.path;
        h.namespace_pinned_in = pin->second.in;
      }
    }
    if (h.pid == 0) continue;
    auto it = details.find(h.pid);
    if (it == details.end()) {
      holders_internal::ProcessDetails d = holders_internal::ReadDetails(procfs_, h.pid);
      if (namer_ != nullptr && !d.container.container_id.empty()) namer_->Name(d.container);
      it = details.emplace(h.pid, std::move(d)).first;
    }
    h.comm = it->second.comm;
    h.cmdline = it->second.cmdline;
    h.container = it->second.container;
    h.exiting = it->second.exiting;
  }
}

absl::StatusOr<HolderReport> HolderScanner::Scan(unsigned major, unsigned minor,
                                                 const ScanOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  ScanState s(options);
  FindDevices(major, minor, s);
  RETURN_IF_ERROR(ScanProcesses(s));
  // Each namespace's mount table once: from the kernel when it can list them (which also shows
  // namespaces without a process), from /proc/PID/mountinfo for the rest.
  ScanKernelNamespaces(s);
  ScanProcNamespaces(s);
  AddDeviceHolders(s);
  AddDetails(s);
  holders_internal::Classify(options, s.holders);
  std::stable_sort(s.holders.begin(), s.holders.end(), [](const Holder& a, const Holder& b) {
    return std::make_tuple(static_cast<int>(a.kind), a.pid == 0, a.pid, a.mount_namespace) <
           std::make_tuple(static_cast<int>(b.kind), b.pid == 0, b.pid, b.mount_namespace);
  });
  s.report.holders = std::move(s.holders);
  s.report.duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  return std::move(s.report);
}

std::string_view HolderKindName(HolderKind kind) {
  switch (kind) {
    case HolderKind::kMount:
      return "mount";
    case HolderKind::kOpenDevice:
      return "open-device";
    case HolderKind::kFileOnFilesystem:
      return "open-file";
    case HolderKind::kStackedDevice:
      return "stacked-device";
    case HolderKind::kSwap:
      return "swap";
  }
  return "unknown";
}

std::string_view PropagationClassName(PropagationClass klass) {
  switch (klass) {
    case PropagationClass::kNone:
      return "";
    case PropagationClass::kPending:
      return "pending";
    case PropagationClass::kPrivate:
      return "private";
  }
  return "";
}

std::string_view NamespaceMethodName(NamespaceMethod method) {
  return method == NamespaceMethod::kKernel ? "kernel" : "proc";
}

}  // namespace rbdcsi
