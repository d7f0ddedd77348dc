#include "driver/holder_busy_handler.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/status.h"
#include "driver/holders_message.h"

namespace rbdcsi {
namespace {

const auto& HoldersLog() {
  static const auto logger = Logger("holders");
  return logger;
}

long long Millis(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// The mount the refused unmount was about is the host's own staging mount: it is no holder (it
// would make every report "held", and as the scanner marks it pending, a wait for nothing).
// Holder::mount_id and record.staging_mount_id are both the old, mountinfo-style ids, which are
// unique system-wide while a mount lives; a record without one falls back to the path.
void DropStagingMount(const VolumeRecord& record, HolderReport& report) {
  auto is_staging = [&record](const Holder& h) {
    if (h.kind != HolderKind::kMount || !h.host_namespace) return false;
    return record.staging_mount_id != 0 ? h.mount_id == record.staging_mount_id
                                        : h.mount_point == record.staging_path;
  };
  report.holders.erase(std::remove_if(report.holders.begin(), report.holders.end(), is_staging),
                       report.holders.end());
}

// Issue 14: the holders are only copies of the staging mount that sit on the staging directory
// itself in other mount namespaces (seen there at the staging path, or below a prefix such as
// node_exporter's /host). Removing that directory makes the kernel detach them all; open files,
// cwd/root, stacked devices, swap and copies mounted elsewhere it cannot release. A copy that
// only looks like one (a different directory with the same path tail) stays busy, and the next
// attempt refuses naming it: the check errs towards an rmdir that releases nothing, never
// towards removing more than the empty staging directory.
bool IsCopyOnStagingDirOnly(const VolumeRecord& record, const HolderReport& report) {
  if (record.staging_path.empty() || !report.held()) return false;
  for (const Holder& h : report.holders) {
    if (h.kind != HolderKind::kMount || h.host_namespace) return false;
    const std::string& p = h.mount_point;
    const std::string& s = record.staging_path;
    const bool on_staging =
        p == s || (p.size() > s.size() && p.compare(p.size() - s.size(), s.size(), s) == 0);
    if (!on_staging) return false;
  }
  return true;
}

}  // namespace

HolderBusyHandler::HolderBusyHandler(HolderBusyConfig config, HolderScanner* scanner,
                                     NamespaceUnmounter* unmounter, HostEnv* clock,
                                     Metrics& metrics, ReleaseWatcherFactory watchers)
    : config_(std::move(config)),
      scanner_(scanner),
      unmounter_(unmounter),
      clock_(clock),
      metrics_(metrics),
      watchers_(watchers ? std::move(watchers) : [] {
        return std::unique_ptr<ReleaseWatcher>(std::make_unique<ReleaseWaiter>());
      }) {}

absl::StatusOr<HolderReport> HolderBusyHandler::Scan(const VolumeRecord& record) {
  ScanOptions options;
  if (record.staging_peer_group != 0) options.host_peer_group = record.staging_peer_group;
  if (record.staging_mount_id != 0) options.host_mount_id = record.staging_mount_id;
  if (config_.device_servers) options.exclude_pids = config_.device_servers(record);
  std::lock_guard<std::mutex> lock(scan_mu_);
  absl::StatusOr<HolderReport> report =
      scanner_->Scan(record.device.major, record.device.minor, options);
  if (report.ok()) {
    metrics_.HolderScan(std::chrono::duration<double>(report->duration).count());
  }
  return report;
}

absl::Status HolderBusyHandler::ReleaseByRemovingStagingDir(const VolumeRecord& record,
                                                            const HolderReport& report) {
  if (!config_.release_private_copies || !IsCopyOnStagingDirOnly(record, report)) {
    return absl::NotFoundError("not only copies on the staging directory");
  }
  absl::StatusOr<FileInfo> dir = clock_->Stat(record.staging_path);
  if (!dir.ok() || dir->type != FileType::kDirectory) {
    return absl::NotFoundError("no staging directory");  // e.g. kubelet removed it already
  }
  // rmdir(2) only: an empty directory that is no mount point in this namespace (EBUSY then).
  absl::Status removed = clock_->Remove(record.staging_path);
  if (!removed.ok()) {
    HoldersLog()->warn(
        "volume {}: could not remove the staging directory {} to release copies of its "
        "mount: {}",
        record.volume_id, record.staging_path, std::string(removed.message()));
    return absl::NotFoundError("staging directory not removed");
  }
  for (const Holder& h : report.holders) {
    metrics_.Reclaim("staging-dir-removed");
    HoldersLog()->warn(
        "volume {}: removed the staging directory {}, so the kernel detached the copy of its "
        "mount at {} in mount namespace {} of {}; the holder keeps running",
        record.volume_id, record.staging_path, h.mount_point, h.mount_namespace, DescribeWho(h));
  }
  return absl::OkStatus();
}

absl::Status HolderBusyHandler::Reclaim(const VolumeRecord& record, const HolderReport& report) {
  int done = 0;
  for (const Holder& h : report.holders) {
    if (h.kind != HolderKind::kMount || h.host_namespace || h.pid == 0 ||
        config_.reclaim_commands.count(h.comm) == 0) {
      continue;
    }
    const absl::Status st =
        unmounter_->Unmount(h.pid, h.tid, h.mount_namespace, h.mount_id, h.mount_point);
    metrics_.Reclaim(st.ok() ? "ok" : "failed");
    if (st.ok()) {
      ++done;
      ++reclaims_;
      HoldersLog()->warn(
          "volume {}: reclaimed stale mount {} (mount id {}) of {} in mount namespace {} of {}: "
          "--reclaim-stale-mounts allows {}",
          record.volume_id, h.mount_point, h.mount_id, record.device.path, h.mount_namespace,
          DescribeWho(h), h.comm);
    } else {
      HoldersLog()->warn(
          "volume {}: reclaiming stale mount {} (mount id {}) of {} in mount namespace {} of {} "
          "failed: {}",
          record.volume_id, h.mount_point, h.mount_id, record.device.path, h.mount_namespace,
          DescribeWho(h), std::string(st.message()));
    }
  }
  if (done > 0) return absl::OkStatus();
  return absl::NotFoundError("nothing reclaimed");
}

absl::Status HolderBusyHandler::OnBusy(const VolumeRecord& record, BusyStage stage,
                                       const absl::Status& busy, int attempt,
                                       std::chrono::steady_clock::time_point since) {
  ASSIGN_OR_RETURN(HolderReport report, Scan(record));
  if (stage == BusyStage::kUnmount) DropStagingMount(record, report);
  for (const Holder& h : report.holders) {
    metrics_.HolderFound(HolderKindName(h.kind), PropagationClassName(h.propagation), h.comm);
  }
  HoldersLog()->info("volume {}: {} busy (attempt {}): {}", record.volume_id, record.device.path,
                     attempt, FormatScanSummary(report));
  if (!report.held()) {
    // Released between the failed call and the scan; a bounded number of quick retries.
    if (attempt < 3) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", record.volume_id, ": ", record.device.path, " stays busy (", busy.message(),
        ") but no holder was found; the kernel may still be releasing it, retry",
        stage == BusyStage::kUnmount
            ? absl::StrCat(" (the staging path ", record.staging_path, " is still mounted)")
            : std::string()));
  }
  if (stage == BusyStage::kUnmap && ReleaseByRemovingStagingDir(record, report).ok()) {
    return absl::OkStatus();
  }
  if (!config_.reclaim_commands.empty() && Reclaim(record, report).ok()) {
    return absl::OkStatus();
  }
  const auto deadline = since + config_.wait_budget;
  const auto now = clock_->Now();
  if (report.OnlySelfReleasing() && now < deadline) {
    std::unique_ptr<ReleaseWatcher> waiter = watchers_();
    RETURN_IF_ERROR(waiter->Watch(report));
    ASSIGN_OR_RETURN(bool changed,
                     waiter->WaitForChange(
                         std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)));
    metrics_.HolderWait(changed ? "released" : "timeout",
                        std::chrono::duration<double>(clock_->Now() - now).count());
    if (changed) {
      HoldersLog()->info("volume {}: {} after {} ms; trying again", record.volume_id,
                         waiter->last_event(), Millis(clock_->Now() - since));
      return absl::OkStatus();
    }
  }
  std::string message = DescribeHolders(record.volume_id, record.device.path, record.device.major,
                                        record.device.minor, report);
  if (report.OnlySelfReleasing()) {
    absl::StrAppend(&message, " (waited ", Millis(clock_->Now() - since),
                    " ms for them to let go)");
  }
  if (stage == BusyStage::kUnmount) {
    absl::StrAppend(&message, " The staging path ", record.staging_path,
                    " is still mounted: its unmount was refused (", busy.message(), ").");
  }
  return absl::FailedPreconditionError(message);
}

}  // namespace rbdcsi
