// Metrics kept in a prometheus-cpp registry, and the HTTP endpoint that serves them.
#ifndef RBDCSI_METRICS_PROMETHEUS_METRICS_H_
#define RBDCSI_METRICS_PROMETHEUS_METRICS_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "metrics/metrics.h"

namespace rbdcsi {

// Counts of volume records by their step ("staged": 3), read when Prometheus scrapes.
using VolumesByStep = std::function<std::map<std::string, int>()>;

// Thread-safe. Metric names are listed in the README.
class PrometheusMetrics : public Metrics {
 public:
  explicit PrometheusMetrics(VolumesByStep volumes_by_step);
  ~PrometheusMetrics() override;

  void Rpc(std::string_view method, std::string_view code, double seconds) override;
  void UnstageAttempt(std::string_view outcome) override;
  void UnstageBlocked(std::string_view volume_id, bool blocked) override;
  void HolderFound(std::string_view kind, std::string_view propagation,
                   std::string_view command) override;
  void HolderScan(double seconds) override;
  void HolderWait(std::string_view outcome, double seconds) override;
  void Reclaim(std::string_view outcome) override;
  void Command(std::string_view command, std::string_view result, double seconds) override;

  // Everything, in Prometheus' text format (what the endpoint serves).
  std::string Text() const;

  // Serves GET /metrics on `address` ("HOST:PORT", ":PORT" for every interface; port 0 picks a
  // free one) with one thread. Returns the port it listens on. UNAVAILABLE when it cannot bind.
  // Call once.
  absl::StatusOr<int> Serve(const std::string& address);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_METRICS_PROMETHEUS_METRICS_H_
