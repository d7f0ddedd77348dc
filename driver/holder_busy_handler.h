// DESIGN.md step 5: when the device is busy, find who holds it; wait only for holders that let
// go by themselves, woken by the kernel's events; otherwise fail at once, naming every holder
// and the fix.
#ifndef RBDCSI_DRIVER_HOLDER_BUSY_HANDLER_H_
#define RBDCSI_DRIVER_HOLDER_BUSY_HANDLER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/host_env.h"
#include "driver/busy_handler.h"
#include "holders/holders.h"
#include "holders/ns_unmount.h"
#include "holders/release_waiter.h"
#include "metrics/metrics.h"

namespace rbdcsi {

struct HolderBusyConfig {
  // How long one unstage may wait for holders that release by themselves (--unstage-wait).
  std::chrono::milliseconds wait_budget{std::chrono::seconds(5)};
  // Commands whose stale private copies of the mount may be unmounted inside their own mount
  // namespace (--reclaim-stale-mounts). Empty: never.
  std::set<std::string> reclaim_commands;
  // After the host unmount, when the only holders are copies of the staging mount sitting on
  // the staging directory in other mount namespaces, remove that (empty) directory: Linux
  // detaches every mount on an unlinked directory in all namespaces (--release-private-copies).
  bool release_private_copies = true;
  // The processes the volume's mapper runs to serve its device (Mapper::Servers: rbd-nbd's
  // daemon); never counted as holders. Null: none.
  std::function<std::vector<pid_t>(const VolumeRecord& record)> device_servers = nullptr;
};

// Thread-safe: scans are serialized (the scanner is thread-compatible).
class HolderBusyHandler : public BusyHandler {
 public:
  // `unmounter` performs reclaims; `env` removes staging directories and its clock measures the
  // wait budget; `metrics` receives scan
  // durations, the holders found, waits and reclaims; `watchers` makes what waits for holders to
  // let go (null: the kernel-driven ReleaseWaiter). All must outlive the handler.
  HolderBusyHandler(HolderBusyConfig config, HolderScanner* scanner, NamespaceUnmounter* unmounter,
                    HostEnv* env, Metrics& metrics = NullMetrics(),
                    ReleaseWatcherFactory watchers = nullptr);

  absl::Status OnBusy(const VolumeRecord& record, BusyStage stage, const absl::Status& busy,
                      int attempt, std::chrono::steady_clock::time_point since) override;

  // Number of stale mounts unmounted inside holders' namespaces so far.
  int reclaims() const { return reclaims_; }

 private:
  absl::StatusOr<HolderReport> Scan(const VolumeRecord& record);
  // OK after removing the staging directory released copies of the mount (the caller retries);
  // NOT_FOUND when this does not apply (some holder is no such copy, the directory is gone).
  absl::Status ReleaseByRemovingStagingDir(const VolumeRecord& record, const HolderReport& report);
  // OK when at least one stale mount was reclaimed (the caller retries).
  absl::Status Reclaim(const VolumeRecord& record, const HolderReport& report);

  const HolderBusyConfig config_;
  HolderScanner* scanner_;
  NamespaceUnmounter* unmounter_;
  HostEnv* clock_;  // also the files: the staging directory release
  Metrics& metrics_;
  ReleaseWatcherFactory watchers_;
  std::mutex scan_mu_;
  std::atomic<int> reclaims_{0};
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_HOLDER_BUSY_HANDLER_H_
