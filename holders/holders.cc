#include "holders/holders.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "mounter/mountinfo.h"

namespace rbdcsi {
namespace {

constexpr unsigned long kPfExiting = 0x4;  // include/linux/sched.h

std::string DeviceText(DeviceNumber d) { return absl::StrCat(d.major, ":", d.minor); }

bool Contains(const std::vector<DeviceNumber>& devices, DeviceNumber d) {
  return std::find(devices.begin(), devices.end(), d) != devices.end();
}

// A mount namespace seen through /proc, and the task whose files show it.
struct Namespace {
  pid_t pid = 0;
  pid_t tid = 0;
  int processes = 0;
  bool weak = true;  // Named after the scanner itself or a kernel thread: replace if possible.
};

// "mnt:[4026532871]" (the root of a bind-mounted nsfs file) -> 4026532871.
std::optional<uint64_t> PinnedNamespace(const MountInfo& m) {
  const std::string_view root = m.root;
  if (root.size() < 7 || root.substr(0, 5) != "mnt:[" || root.back() != ']') return std::nullopt;
  uint64_t ino = 0;
  for (const char c : root.substr(5, root.size() - 6)) {
    if (c < '0' || c > '9') return std::nullopt;
    ino = ino * 10 + static_cast<uint64_t>(c - '0');
  }
  return ino;
}

struct Pin {
  std::string path;  // Mount point of the nsfs bind mount, in namespace `in`.
  uint64_t in = 0;   // Namespace where that path is.
  pid_t pid = 0;     // A process there (for /proc/PID/root), 0 if none.
};

std::string FileDescription(const ProcessFile& f) {
  switch (f.slot) {
    case ProcessFile::Slot::kCwd:
      return "cwd";
    case ProcessFile::Slot::kRoot:
      return "root";
    case ProcessFile::Slot::kExe:
      return "exe";
    case ProcessFile::Slot::kFd:
      break;
  }
  return absl::StrCat("fd ", f.fd);
}

struct ProcessDetails {
  std::string comm;
  std::string cmdline;
  ContainerIdentity container;
  bool exiting = false;
};

ProcessDetails ReadDetails(ProcFs& procfs, pid_t pid) {
  ProcessDetails d;
  if (auto comm = procfs.ReadProcessFile(pid, "comm"); comm.ok()) {
    d.comm = *std::move(comm);
    while (!d.comm.empty() && d.comm.back() == '\n') d.comm.pop_back();
  }
  if (auto cmdline = procfs.ReadProcessFile(pid, "cmdline"); cmdline.ok()) {
    d.cmdline = *std::move(cmdline);
    while (!d.cmdline.empty() && d.cmdline.back() == '\0') d.cmdline.pop_back();
    std::replace(d.cmdline.begin(), d.cmdline.end(), '\0', ' ');
  }
  if (auto cgroup = procfs.ReadProcessFile(pid, "cgroup"); cgroup.ok()) {
    d.container = IdentifyContainer(*cgroup);
  }
  if (auto stat = procfs.ReadProcessFile(pid, "stat"); stat.ok()) {
    // "pid (comm) S ppid pgrp session tty_nr tpgid flags ..."; comm may contain ')' and spaces.
    const size_t close = stat->rfind(')');
    if (close != std::string::npos) {
      std::vector<absl::string_view> fields =
          absl::StrSplit(absl::string_view(*stat).substr(close + 1), ' ', absl::SkipEmpty());
      if (!fields.empty()) d.exiting = fields[0] == "Z" || fields[0] == "X";
      if (fields.size() > 6) {
        const unsigned long flags = std::strtoul(std::string(fields[6]).c_str(), nullptr, 10);
        d.exiting = d.exiting || (flags & kPfExiting) != 0;
      }
    }
  }
  return d;
}

Holder MountHolder(const MountInfo& m, uint64_t ns) {
  Holder h;
  h.kind = HolderKind::kMount;
  h.mount_namespace = ns;
  h.mount_point = m.mount_point;
  h.mount_id = m.mount_id;
  h.propagation_tags = m.optional_fields;
  return h;
}

// Marks each mount holder pending or private. Slaves of slaves count: a group H whose mounts
// receive from a pending group is pending too (e.g. a container runtime's rslave copy that is
// itself shared with a nested namespace).
void Classify(const ScanOptions& options, std::vector<Holder>& holders) {
  std::set<int> pending;
  if (options.host_peer_group) pending.insert(*options.host_peer_group);
  for (const Holder& h : holders) {
    if (h.kind != HolderKind::kMount || !h.host_namespace || !options.host_mount_id ||
        h.mount_id != *options.host_mount_id) {
      continue;
    }
    MountInfo m;
    m.optional_fields = h.propagation_tags;
    if (auto shared = m.shared_peer_group()) pending.insert(*shared);
  }
  for (bool grew = !pending.empty(); grew;) {
    grew = false;
    for (const Holder& h : holders) {
      MountInfo m;
      m.optional_fields = h.propagation_tags;
      const auto master = m.master_peer_group();
      const auto shared = m.shared_peer_group();
      if (master && shared && pending.count(*master) && !pending.count(*shared)) {
        pending.insert(*shared);
        grew = true;
      }
    }
  }
  for (Holder& h : holders) {
    if (h.kind != HolderKind::kMount) continue;
    MountInfo m;
    m.optional_fields = h.propagation_tags;
    const auto master = m.master_peer_group();
    const auto shared = m.shared_peer_group();
    const bool is_host_mount =
        h.host_namespace && options.host_mount_id && h.mount_id == *options.host_mount_id;
    h.propagation =
        is_host_mount || (master && pending.count(*master)) || (shared && pending.count(*shared))
            ? PropagationClass::kPending
            : PropagationClass::kPrivate;
  }
}

void ScanSwaps(ProcFs& procfs, const std::vector<DeviceNumber>& devices,
               std::vector<Holder>& holders) {
  absl::StatusOr<std::string> swaps = procfs.ReadSwaps();
  if (!swaps.ok()) return;
  bool header = true;
  for (absl::string_view line : absl::StrSplit(*swaps, '\n', absl::SkipEmpty())) {
    if (std::exchange(header, false)) continue;  // "Filename Type Size Used Priority"
    const std::string path =
        UnescapeMountField(std::string_view(line.data(), line.find_first_of(" \t")));
    absl::StatusOr<ProcessFile> st = procfs.StatPath(path);
    if (!st.ok()) continue;
    if ((st->block_device && Contains(devices, st->rdev)) ||
        (!st->block_device && Contains(devices, st->dev))) {
      Holder h;
      h.kind = HolderKind::kSwap;
      h.swap_path = path;
      holders.push_back(std::move(h));
    }
  }
}

}  // namespace

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

void HolderScanner::AddFileHolders(pid_t pid, uint64_t ns, const std::vector<DeviceNumber>& devices,
                                   std::vector<Holder>& holders) {
  // One holder per process and kind; further matches only add to its count.
  size_t index[2] = {SIZE_MAX, SIZE_MAX};  // kOpenDevice, kFileOnFilesystem
  for (const ProcessFile& f : files_) {
    const bool on_device = f.block_device && Contains(devices, f.rdev);
    if (!on_device && !Contains(devices, f.dev)) continue;
    const int k = on_device ? 0 : 1;
    if (index[k] != SIZE_MAX) {
      ++holders[index[k]].other_files;
      continue;
    }
    Holder h;
    h.kind = on_device ? HolderKind::kOpenDevice : HolderKind::kFileOnFilesystem;
    h.pid = pid;
    h.mount_namespace = ns;
    h.file = FileDescription(f);
    if (auto path = procfs_.FilePath(pid, f); path.ok()) h.path = *std::move(path);
    index[k] = holders.size();
    holders.push_back(std::move(h));
  }
}

absl::StatusOr<HolderReport> HolderScanner::Scan(unsigned major, unsigned minor,
                                                 const ScanOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  HolderReport report;
  report.device = {major, minor};
  if (auto partitions = procfs_.ListPartitions(report.device); partitions.ok()) {
    report.partitions = *std::move(partitions);
  }
  std::vector<DeviceNumber> devices = {report.device};
  devices.insert(devices.end(), report.partitions.begin(), report.partitions.end());
  std::vector<std::string> needles;
  for (const DeviceNumber& d : devices) needles.push_back(DeviceText(d));
  std::optional<DeviceNumber> nsfs;
  if (auto dev = procfs_.NsfsDevice(); dev.ok()) {
    nsfs = *dev;
    needles.push_back(DeviceText(*dev));
  }

  const pid_t self = procfs_.SelfPid();
  const absl::StatusOr<uint64_t> self_ns = procfs_.MountNamespaceOf(self, 0);
  // Ordered by inode so that reports are stable.
  std::map<uint64_t, Namespace> namespaces;
  std::vector<Holder> holders;

  absl::Status listed = procfs_.ListProcesses(&pids_);
  if (!listed.ok()) return Annotate(listed, "cannot scan processes for holders");
  std::sort(pids_.begin(), pids_.end());
  for (const pid_t pid : pids_) {
    const absl::StatusOr<uint64_t> ns = procfs_.MountNamespaceOf(pid, 0);
    if (!ns.ok()) continue;  // Gone.
    ++report.processes_scanned;
    bool kernel_thread = false;
    if (options.scan_process_files &&
        std::find(options.exclude_pids.begin(), options.exclude_pids.end(), pid) ==
            options.exclude_pids.end() &&
        procfs_.ListProcessFiles(pid, &files_).ok()) {
      // Kernel threads have no executable; their cwd and root are the host's "/".
      kernel_thread = std::none_of(files_.begin(), files_.end(), [](const ProcessFile& f) {
        return f.slot == ProcessFile::Slot::kExe;
      });
      if (!kernel_thread) AddFileHolders(pid, *ns, devices, holders);
    }
    Namespace& entry = namespaces[*ns];
    const bool weak = pid == self || kernel_thread;
    if (entry.pid == 0 || (entry.weak && !weak)) {
      entry.pid = pid;
      entry.tid = 0;
      entry.weak = weak;
    }
    ++entry.processes;
    // Threads share their process's namespace unless one called unshare(CLONE_NEWNS): look only
    // when there is more than one thread.
    const absl::StatusOr<int> threads = procfs_.ThreadCount(pid);
    if (threads.ok() && *threads > 1 && procfs_.ListThreads(pid, &tids_).ok()) {
      for (const pid_t tid : tids_) {
        if (tid == pid) continue;
        const absl::StatusOr<uint64_t> tns = procfs_.MountNamespaceOf(pid, tid);
        if (!tns.ok() || *tns == *ns) continue;
        Namespace& t = namespaces[*tns];
        if (t.pid == 0) t = {pid, tid, 0, false};
        ++t.processes;
      }
    }
  }

  // Each namespace's mount table once: from the kernel when it can list them (which also shows
  // namespaces without a process), from /proc/PID/mountinfo for the rest.
  std::map<uint64_t, Pin> pins;
  std::vector<DeviceNumber> mount_devices = devices;
  if (nsfs) mount_devices.push_back(*nsfs);
  auto add_mounts = [&](uint64_t ns, const Namespace* entry, const std::vector<MountInfo>& mounts) {
    for (const MountInfo& m : mounts) {
      const DeviceNumber dev{m.major, m.minor};
      if (nsfs && dev == *nsfs) {
        if (auto pinned = PinnedNamespace(m)) {
          pins.emplace(*pinned, Pin{m.mount_point, ns, entry ? entry->pid : 0});
        }
      } else if (Contains(devices, dev)) {
        Holder h = MountHolder(m, ns);
        if (entry != nullptr) {
          h.pid = entry->pid;
          h.tid = entry->tid;
          h.processes_in_namespace = entry->processes;
        }
        holders.push_back(std::move(h));
      }
    }
  };
  std::set<uint64_t> done;
  absl::StatusOr<std::vector<KernelMountNamespace>> kernel = procfs_.ListMountNamespaces();
  if (kernel.ok()) {
    report.method = NamespaceMethod::kKernel;
    for (const KernelMountNamespace& k : *kernel) {
      absl::StatusOr<std::vector<MountInfo>> mounts = procfs_.ListNamespaceMounts(k, mount_devices);
      if (absl::IsUnimplemented(mounts.status())) {
        report.method = NamespaceMethod::kProc;
        report.method_note = std::string(mounts.status().message());
        break;
      }
      if (!mounts.ok()) continue;  // Gone meanwhile.
      const auto entry = namespaces.find(k.inode);
      add_mounts(k.inode, entry == namespaces.end() ? nullptr : &entry->second, *mounts);
      done.insert(k.inode);
      ++report.namespaces_scanned;
    }
  } else {
    report.method_note = std::string(kernel.status().message());
  }
  std::vector<MountInfo> matched;
  auto parse_matches = [&](std::string_view text) {
    matched.clear();
    ForEachMountLineOf(text, needles, [&](std::string_view line) {
      if (absl::StatusOr<MountInfo> m = ParseMountInfoLine(line); m.ok()) {
        matched.push_back(*std::move(m));
      }
    });
  };
  for (const auto& [ns, entry] : namespaces) {
    if (done.count(ns) || !procfs_.ReadMountInfo(entry.pid, entry.tid, &text_).ok()) continue;
    ++report.namespaces_scanned;
    parse_matches(text_);
    add_mounts(ns, &entry, matched);
    done.insert(ns);
  }
  // Without the kernel's list, namespaces without a process are found only through their nsfs
  // file bind-mounted in a namespace we could read.
  if (report.method == NamespaceMethod::kProc) {
    for (const auto& [ns, pin] : pins) {
      if (done.count(ns) || pin.pid == 0) continue;
      const std::string file = absl::StrCat("/proc/", pin.pid, "/root", pin.path);
      if (!procfs_.ReadMountInfoOfNamespaceFile(file, &text_).ok()) continue;
      ++report.namespaces_scanned;
      parse_matches(text_);
      add_mounts(ns, nullptr, matched);
      done.insert(ns);
    }
  }

  if (auto stacked = procfs_.ListStackedDevices(report.device); stacked.ok()) {
    for (StackedDevice& s : *stacked) {
      Holder h;
      h.kind = HolderKind::kStackedDevice;
      h.stacked = std::move(s);
      holders.push_back(std::move(h));
    }
  }
  ScanSwaps(procfs_, devices, holders);

  std::unordered_map<pid_t, ProcessDetails> details;
  for (Holder& h : holders) {
    if (self_ns.ok() && h.mount_namespace == *self_ns && h.kind == HolderKind::kMount) {
      h.host_namespace = true;
    }
    if (h.kind == HolderKind::kMount && h.pid == 0) {
      if (auto pin = pins.find(h.mount_namespace); pin != pins.end()) {
        h.namespace_pinned_at = pin->second.path;
        h.namespace_pinned_in = pin->second.in;
      }
    }
    if (h.pid == 0) continue;
    auto it = details.find(h.pid);
    if (it == details.end()) {
      ProcessDetails d = ReadDetails(procfs_, h.pid);
      if (namer_ != nullptr && !d.container.container_id.empty()) namer_->Name(d.container);
      it = details.emplace(h.pid, std::move(d)).first;
    }
    h.comm = it->second.comm;
    h.cmdline = it->second.cmdline;
    h.container = it->second.container;
    h.exiting = it->second.exiting;
  }
  Classify(options, holders);
  std::stable_sort(holders.begin(), holders.end(), [](const Holder& a, const Holder& b) {
    return std::make_tuple(static_cast<int>(a.kind), a.pid == 0, a.pid, a.mount_namespace) <
           std::make_tuple(static_cast<int>(b.kind), b.pid == 0, b.pid, b.mount_namespace);
  });
  report.holders = std::move(holders);
  report.duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  return report;
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
