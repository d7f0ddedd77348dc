// A Metrics that remembers every call as a line of text, for tests. Thread-safe.
#ifndef RBDCSI_METRICS_TESTING_FAKE_METRICS_H_
#define RBDCSI_METRICS_TESTING_FAKE_METRICS_H_

#include <initializer_list>
#include <mutex>
#include <string>
#include <vector>

#include "metrics/metrics.h"

namespace rbdcsi {

class FakeMetrics : public Metrics {
 public:
  // Each call as "Name(arg,arg)"; durations are left out.
  std::vector<std::string> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

  void Rpc(std::string_view method, std::string_view code, double) override {
    Add(Cat({"Rpc(", method, ",", code, ")"}));
  }
  void UnstageAttempt(std::string_view outcome) override {
    Add(Cat({"UnstageAttempt(", outcome, ")"}));
  }
  void UnstageBlocked(std::string_view volume_id, bool blocked) override {
    Add(Cat({"UnstageBlocked(", volume_id, ",", blocked ? "true" : "false", ")"}));
  }
  void HolderFound(std::string_view kind, std::string_view propagation,
                   std::string_view command) override {
    Add(Cat({"HolderFound(", kind, ",", propagation, ",", command, ")"}));
  }
  void HolderScan(double) override { Add("HolderScan()"); }
  void HolderWait(std::string_view outcome, double) override {
    Add(Cat({"HolderWait(", outcome, ")"}));
  }
  void Reclaim(std::string_view outcome) override { Add(Cat({"Reclaim(", outcome, ")"})); }
  void Command(std::string_view command, std::string_view result, double) override {
    Add(Cat({"Command(", command, ",", result, ")"}));
  }

 private:
  // Debian's abseil has its own string_view, so absl::StrCat does not take std::string_view.
  static std::string Cat(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (std::string_view p : parts) out.append(p);
    return out;
  }
  void Add(std::string call) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(std::move(call));
  }

  mutable std::mutex mu_;
  std::vector<std::string> calls_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_METRICS_TESTING_FAKE_METRICS_H_
