// What the plugin counts and times, for Prometheus (`serve --metrics-address`). Code that
// records takes a Metrics&; without the flag it gets NullMetrics(), which does nothing, so the
// node plugin carries no metrics cost unless asked to.
#ifndef RBDCSI_METRICS_METRICS_H_
#define RBDCSI_METRICS_METRICS_H_

#include <string_view>

namespace rbdcsi {

// Implementations are thread-safe. Label values are bounded by the caller (method names, status
// codes, holder kinds, command names of at most 15 bytes, volume ids of busy volumes only).
class Metrics {
 public:
  virtual ~Metrics() = default;

  // One finished RPC: its method ("NodeUnstageVolume"), code ("OK") and duration.
  virtual void Rpc(std::string_view method, std::string_view code, double seconds) = 0;
  // One NodeUnstageVolume: "unmapped", "busy" (FAILED_PRECONDITION), "conflict" (ABORTED),
  // "error" (anything else).
  virtual void UnstageAttempt(std::string_view outcome) = 0;
  // `volume_id`'s unstage was refused because the device is held (blocked = true), or it
  // finished (blocked = false). The first refusal's time is kept until it finishes.
  virtual void UnstageBlocked(std::string_view volume_id, bool blocked) = 0;
  // A holder a scan found: its kind ("mount"), propagation ("private", "pending", "") and
  // command ("node_exporter").
  virtual void HolderFound(std::string_view kind, std::string_view propagation,
                           std::string_view command) = 0;
  virtual void HolderScan(double seconds) = 0;
  // A wait for holders that release by themselves: "released" or "timeout".
  virtual void HolderWait(std::string_view outcome, double seconds) = 0;
  // A stale mount unmounted in a holder's namespace: "ok" or "failed".
  virtual void Reclaim(std::string_view outcome) = 0;
  // A command the plugin ran ("rbd device map", "mkfs.ext4"): "ok", "failed" (non-zero exit),
  // "timeout" or "error" (could not run).
  virtual void Command(std::string_view command, std::string_view result, double seconds) = 0;
};

// A Metrics that records nothing. Never destroyed.
Metrics& NullMetrics();

}  // namespace rbdcsi

#endif  // RBDCSI_METRICS_METRICS_H_
