#include "metrics/metrics.h"

namespace rbdcsi {
namespace {

class Null final : public Metrics {
 public:
  void Rpc(std::string_view, std::string_view, double) override {}
  void UnstageAttempt(std::string_view) override {}
  void UnstageBlocked(std::string_view, bool) override {}
  void HolderFound(std::string_view, std::string_view, std::string_view) override {}
  void HolderScan(double) override {}
  void HolderWait(std::string_view, double) override {}
  void Reclaim(std::string_view) override {}
  void Command(std::string_view, std::string_view, double) override {}
};

}  // namespace

Metrics& NullMetrics() {
  static Null* null = new Null();
  return *null;
}

}  // namespace rbdcsi
