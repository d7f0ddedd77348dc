#include "driver/holder_busy_handler.h"

#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/status.h"
#include "mounter/holders_format.h"
#include "mounter/release_waiter.h"

namespace rbdcsi {
namespace {

const auto& Log() {
  static const auto logger = Logger("holders");
  return logger;
}

long long Millis(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

absl::StatusOr<HolderReport> HolderBusyHandler::Scan(const VolumeRecord& record) {
  ScanOptions options;
  if (record.staging_peer_group != 0) options.host_peer_group = record.staging_peer_group;
  if (record.staging_mount_id != 0) options.host_mount_id = record.staging_mount_id;
  std::lock_guard<std::mutex> lock(scan_mu_);
  return scanner_->Scan(record.device.major, record.device.minor, options);
}

absl::Status HolderBusyHandler::Reclaim(const VolumeRecord& record, const HolderReport& report) {
  int done = 0;
  for (const Holder& h : report.holders) {
    if (h.kind != HolderKind::kMount || h.host_namespace || h.pid == 0 ||
        config_.reclaim_commands.count(h.comm) == 0) {
      continue;
    }
    // setns() into another mount namespace is refused to a multi-threaded process, so the
    // unmount runs in a child that enters the holder's namespace.
    std::vector<std::string> argv = {"nsenter", "--target", std::to_string(h.pid), "--mount",
                                     "--",      "umount",   h.mount_point};
    absl::StatusOr<CommandResult> result = runner_->Run(argv);
    if (result.ok() && result->exit_code == 0) {
      ++done;
      ++reclaims_;
      Log()->warn(
          "volume {}: reclaimed stale mount {} of {} in mount namespace {} of pid {} ({}): "
          "--reclaim-stale-mounts allows {}",
          record.volume_id, h.mount_point, record.device.path, h.mount_namespace, h.pid, h.comm,
          h.comm);
    } else {
      Log()->warn("volume {}: reclaiming {} in mount namespace {} of pid {} ({}) failed: {}",
                  record.volume_id, h.mount_point, h.mount_namespace, h.pid, h.comm,
                  result.ok() ? result->err : std::string(result.status().message()));
    }
  }
  if (done > 0) return absl::OkStatus();
  return absl::NotFoundError("nothing reclaimed");
}

absl::Status HolderBusyHandler::OnBusy(const VolumeRecord& record, BusyStage stage,
                                       const absl::Status& busy, int attempt,
                                       std::chrono::steady_clock::time_point since) {
  ASSIGN_OR_RETURN(HolderReport report, Scan(record));
  Log()->info("volume {}: {} busy (attempt {}): {}", record.volume_id, record.device.path, attempt,
              FormatScanSummary(report));
  if (!report.held()) {
    // Released between the failed call and the scan; a bounded number of quick retries.
    if (attempt < 3) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", record.volume_id, ": ", record.device.path, " stays busy (", busy.message(),
        ") but no holder was found; the kernel may still be releasing it, retry"));
  }
  if (!config_.reclaim_commands.empty() && Reclaim(record, report).ok()) {
    return absl::OkStatus();
  }
  const auto deadline = since + config_.wait_budget;
  const auto now = std::chrono::steady_clock::now();
  if (report.OnlySelfReleasing() && now < deadline) {
    ReleaseWaiter waiter;
    RETURN_IF_ERROR(waiter.Watch(report));
    ASSIGN_OR_RETURN(bool changed,
                     waiter.WaitForChange(
                         std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)));
    if (changed) {
      Log()->info("volume {}: {} after {} ms; trying again", record.volume_id, waiter.last_event(),
                  Millis(std::chrono::steady_clock::now() - since));
      return absl::OkStatus();
    }
  }
  std::string message = DescribeHolders(record.volume_id, record.device.path, record.device.major,
                                        record.device.minor, report);
  if (report.OnlySelfReleasing()) {
    absl::StrAppend(&message, " (waited ", Millis(std::chrono::steady_clock::now() - since),
                    " ms for them to let go)");
  }
  if (stage == BusyStage::kUnmount) {
    absl::StrAppend(&message, " The staging path ", record.staging_path,
                    " is still mounted: its unmount was refused (", busy.message(), ").");
  }
  return absl::FailedPreconditionError(message);
}

}  // namespace rbdcsi
