#include "bench/holder_compare.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "bench/bench_support.h"
#include "bench/synthetic_node.h"

namespace rbdcsi {
namespace {

using Clock = std::chrono::steady_clock;

// Whitespace-separated tokens of `text` include `pid`.
bool MentionsPid(const std::string& text, pid_t pid) {
  const std::string needle = absl::StrCat(pid);
  for (absl::string_view token :
       absl::StrSplit(text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    if (token == needle) return true;
  }
  return false;
}

std::string YesNo(bool b) { return b ? "yes" : "no"; }

}  // namespace

Found RunTool(CommandRunner& runner, const std::string& tool, const std::vector<std::string>& argv,
              const Planted& planted, bool grep, int repeats) {
  Found f;
  f.tool = repeats > 1 ? absl::StrFormat("%s (median of %d)", tool, repeats) : tool;
  CommandOptions options;
  options.timeout = std::chrono::minutes(5);
  absl::StatusOr<CommandResult> r;
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    r = runner.Run(argv, options);
    times.push_back(Ms(Clock::now() - start));
  }
  f.ms = Median(times);
  if (!r.ok()) {
    f.note = std::string(r.status().message());
    return f;
  }
  const std::string all = r->out + "\n" + r->err;
  if (grep) {
    // grep -l prints /proc/PID/task/TID/mountinfo paths.
    f.mount = all.find(absl::StrCat("/proc/", planted.mount, "/task/")) != std::string::npos;
  } else {
    f.mount = MentionsPid(all, planted.mount);
    f.fd = MentionsPid(all, planted.fd);
    f.cwd = MentionsPid(all, planted.cwd);
    f.dm = !planted.dm.empty() && all.find(planted.dm) != std::string::npos;
  }
  return f;
}

Found ScanWithRbdcsi(HolderScanner& scanner, unsigned major, unsigned minor, const Planted& planted,
                     int repeats, HolderReport* last) {
  std::vector<double> times;
  (void)scanner.Scan(major, minor, {});  // Warm the dentry caches as the tools' runs are warm.
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    absl::StatusOr<HolderReport> report = scanner.Scan(major, minor, {});
    times.push_back(Ms(Clock::now() - start));
    if (report.ok()) *last = *std::move(report);
  }
  Found f;
  f.tool = absl::StrFormat("rbdcsi scan (median of %d)", repeats);
  f.ms = Median(times);
  for (const Holder& h : last->holders) {
    f.mount |= h.kind == HolderKind::kMount && h.pid == planted.mount;
    f.fd |= h.kind == HolderKind::kOpenDevice && h.pid == planted.fd;
    f.cwd |= h.kind == HolderKind::kFileOnFilesystem && h.pid == planted.cwd;
    f.dm |= h.kind == HolderKind::kStackedDevice && h.stacked.dm_name == planted.dm;
  }
  return f;
}

void PrintComparison(const std::vector<Found>& rows, bool dm) {
  std::printf("\n%-46s %10s  %-13s %-8s %-10s %s\n", "tool", "time", "private-mount", "open-fd",
              "lazy-cwd", dm ? "stacked-dm" : "stacked-dm (skipped)");
  for (const Found& f : rows) {
    std::printf("%-46s %8.1f ms  %-13s %-8s %-10s %s%s\n", f.tool.c_str(), f.ms,
                YesNo(f.mount).c_str(), YesNo(f.fd).c_str(), YesNo(f.cwd).c_str(),
                dm ? YesNo(f.dm).c_str() : "-", f.note.empty() ? "" : ("  " + f.note).c_str());
  }
}

absl::Status PlantHolders(CommandRunner& runner, const std::string& dir, const std::string& device,
                          Planted& planted, std::string& dm_note) {
  const std::string staging = dir + "/kubelet/globalmount";
  const std::string lazy = dir + "/kubelet/lazy";
  for (const std::string& target : {staging, lazy}) {
    if (::mount(device.c_str(), target.c_str(), "ext4", 0, nullptr) != 0) {
      return ErrnoToStatus(errno, "mount " + device + " on " + target);
    }
  }
  // Started after staging, in a private namespace: the seed incident's node_exporter.
  ASSIGN_OR_RETURN(planted.mount, ForkHolder("node_exporter", UnsharePrivateNamespace));
  ASSIGN_OR_RETURN(planted.fd, ForkHolder("backup-agent", [device] {
                     return ::open(device.c_str(), O_RDONLY) >= 0;
                   }));
  ASSIGN_OR_RETURN(planted.cwd, ForkHolder("shell", [lazy] { return ::chdir(lazy.c_str()) == 0; }));
  if (::umount2(lazy.c_str(), MNT_DETACH) != 0) return ErrnoToStatus(errno, "umount -l " + lazy);

  absl::StatusOr<CommandResult> version = runner.Run({"dmsetup", "version"});
  if (::access("/dev/mapper/control", F_OK) == 0 && version.ok() && version->exit_code == 0) {
    const std::string name = absl::StrCat("rbdcsi-bench-", ::getpid());
    const std::string table = absl::StrCat("0 8192 linear ", device, " 0");
    absl::StatusOr<CommandResult> created =
        runner.Run({"dmsetup", "create", name, "--noudevsync", "--table", table});
    if (created.ok() && created->exit_code == 0) {
      planted.dm = name;
      WriteSmallFile(dir + "/dm-name", name);
    } else {
      dm_note = "dmsetup create failed: " + (created.ok() ? created->err : "");
    }
  } else {
    dm_note = "device-mapper is not available here (no /dev/mapper/control)";
  }
  // The incident: the host unmounted the staging path; the private copy keeps the device.
  if (::umount2(staging.c_str(), 0) != 0) return ErrnoToStatus(errno, "umount " + staging);
  return absl::OkStatus();
}

}  // namespace rbdcsi
