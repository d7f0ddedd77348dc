#include "metrics/prometheus_metrics.h"

#include <chrono>
#include <mutex>

#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace rbdcsi {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// From 1 ms to 2 min: an RPC, a scan, a wait or a command all fall in here.
Histogram::BucketBoundaries Buckets() {
  return {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

std::string S(std::string_view v) { return std::string(v); }

prometheus::MetricFamily Gauges(const std::string& name, const std::string& help) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = prometheus::MetricType::Gauge;
  return family;
}

void AddGauge(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
              double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  family.metric.push_back(std::move(m));
}

}  // namespace

// The registry and the values computed at scrape time (busy volumes, record steps). Shared with
// the exposer, which holds it weakly.
struct PrometheusMetrics::State : public prometheus::Collectable {
  explicit State(VolumesByStep by_step)
      : registry(std::make_shared<prometheus::Registry>()),
        volumes_by_step(std::move(by_step)),
        rpcs(BuildHistogram()
                 .Name("rbdcsi_rpc_duration_seconds")
                 .Help("CSI calls by method and result code; _count is the number of calls")
                 .Register(*registry)),
        unstages(BuildCounter()
                     .Name("rbdcsi_unstage_attempts_total")
                     .Help("NodeUnstageVolume calls by outcome: unmapped, busy, conflict, error")
                     .Register(*registry)),
        holders(BuildCounter()
                    .Name("rbdcsi_holders_found_total")
                    .Help("Holders of busy devices found by scans, by kind, propagation, command")
                    .Register(*registry)),
        scans(BuildHistogram()
                  .Name("rbdcsi_holder_scan_duration_seconds")
                  .Help("Duration of holder scans of busy devices")
                  .Register(*registry)),
        waits(BuildHistogram()
                  .Name("rbdcsi_holder_wait_duration_seconds")
                  .Help("Waits for holders that release by themselves, by outcome")
                  .Register(*registry)),
        reclaims(BuildCounter()
                     .Name("rbdcsi_reclaims_total")
                     .Help("Stale mounts unmounted in holders' namespaces, by outcome")
                     .Register(*registry)),
        commands(BuildHistogram()
                     .Name("rbdcsi_command_duration_seconds")
                     .Help("Commands run by the plugin (rbd, mkfs, ...), by command and result")
                     .Register(*registry)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out = registry->Collect();
    prometheus::MetricFamily busy =
        Gauges("rbdcsi_busy_volumes", "Volumes whose last unstage was refused: device held");
    prometheus::MetricFamily since =
        Gauges("rbdcsi_unstage_blocked_since_seconds",
               "Unix time of the first refused unstage of each volume still blocked");
    prometheus::MetricFamily oldest =
        Gauges("rbdcsi_unstage_oldest_blocked_seconds",
               "Seconds since the first refused unstage of the longest-blocked volume (0: none)");
    double oldest_seconds = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      AddGauge(busy, {}, static_cast<double>(blocked.size()));
      const auto now = std::chrono::system_clock::now();
      for (const auto& [volume, when] : blocked) {
        AddGauge(since, {{"volume_id", volume}},
                 std::chrono::duration<double>(when.time_since_epoch()).count());
        oldest_seconds =
            std::max(oldest_seconds, std::chrono::duration<double>(now - when).count());
      }
    }
    AddGauge(oldest, {}, oldest_seconds);
    prometheus::MetricFamily steps =
        Gauges("rbdcsi_volumes", "Volume records on this node by the step they reached");
    if (volumes_by_step) {
      for (const auto& [step, count] : volumes_by_step()) AddGauge(steps, {{"step", step}}, count);
    }
    for (auto* f : {&busy, &since, &oldest, &steps}) out.push_back(std::move(*f));
    return out;
  }

  std::shared_ptr<prometheus::Registry> registry;
  VolumesByStep volumes_by_step;
  prometheus::Family<Histogram>& rpcs;
  prometheus::Family<prometheus::Counter>& unstages;
  prometheus::Family<prometheus::Counter>& holders;
  prometheus::Family<Histogram>& scans;
  prometheus::Family<Histogram>& waits;
  prometheus::Family<prometheus::Counter>& reclaims;
  prometheus::Family<Histogram>& commands;
  mutable std::mutex mu;
  std::map<std::string, std::chrono::system_clock::time_point> blocked;
  std::unique_ptr<prometheus::Exposer> exposer;
};

PrometheusMetrics::PrometheusMetrics(VolumesByStep volumes_by_step)
    : state_(std::make_shared<State>(std::move(volumes_by_step))) {}

PrometheusMetrics::~PrometheusMetrics() { state_->exposer.reset(); }

void PrometheusMetrics::Rpc(std::string_view method, std::string_view code, double seconds) {
  state_->rpcs.Add({{"method", S(method)}, {"code", S(code)}}, Buckets()).Observe(seconds);
}

void PrometheusMetrics::UnstageAttempt(std::string_view outcome) {
  state_->unstages.Add({{"outcome", S(outcome)}}).Increment();
}

void PrometheusMetrics::UnstageBlocked(std::string_view volume_id, bool blocked) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (blocked) {
    state_->blocked.emplace(S(volume_id), std::chrono::system_clock::now());
  } else {
    state_->blocked.erase(S(volume_id));
  }
}

void PrometheusMetrics::HolderFound(std::string_view kind, std::string_view propagation,
                                    std::string_view command) {
  state_->holders.Add({{"kind", S(kind)}, {"propagation", S(propagation)}, {"command", S(command)}})
      .Increment();
}

void PrometheusMetrics::HolderScan(double seconds) {
  state_->scans.Add({}, Buckets()).Observe(seconds);
}

void PrometheusMetrics::HolderWait(std::string_view outcome, double seconds) {
  state_->waits.Add({{"outcome", S(outcome)}}, Buckets()).Observe(seconds);
}

void PrometheusMetrics::Reclaim(std::string_view outcome) {
  state_->reclaims.Add({{"outcome", S(outcome)}}).Increment();
}

void PrometheusMetrics::Command(std::string_view command, std::string_view result, double seconds) {
  state_->commands.Add({{"command", S(command)}, {"result", S(result)}}, Buckets())
      .Observe(seconds);
}

std::string PrometheusMetrics::Text() const {
  return prometheus::TextSerializer().Serialize(state_->Collect());
}

absl::StatusOr<int> PrometheusMetrics::Serve(const std::string& address) {
  // civetweb takes "PORT" for every interface, where Go's convention is ":PORT".
  const std::string civet = !address.empty() && address[0] == ':' ? address.substr(1) : address;
  try {
    state_->exposer = std::make_unique<prometheus::Exposer>(civet, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError("cannot serve metrics on " + address + ": " + e.what());
  }
  state_->exposer->RegisterCollectable(state_);
  const std::vector<int> ports = state_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports[0];
}

}  // namespace rbdcsi
