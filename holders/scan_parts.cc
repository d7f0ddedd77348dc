#include "holders/scan_parts.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rbdcsi::holders_internal {
namespace {

constexpr unsigned long kPfExiting = 0x4;  // include/linux/sched.h

}  // namespace

std::string DeviceText(DeviceNumber d) { return absl::StrCat(d.major, ":", d.minor); }

bool Contains(const std::vector<DeviceNumber>& devices, DeviceNumber d) {
  return std::find(devices.begin(), devices.end(), d) != devices.end();
}

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

}  // namespace rbdcsi::holders_internal
