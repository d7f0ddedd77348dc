// A BusyHandler whose answer the test scripts, logging each call.
#ifndef RBDCSI_DRIVER_TESTING_SCRIPTED_BUSY_HANDLER_H_
#define RBDCSI_DRIVER_TESTING_SCRIPTED_BUSY_HANDLER_H_

#include <chrono>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/testing/fake_actions.h"
#include "driver/busy_handler.h"

namespace rbdcsi {

// Runs a test-provided reaction and logs each call.
class ScriptedBusyHandler : public BusyHandler {
 public:
  using Reaction = std::function<absl::Status(const VolumeRecord&, BusyStage, int)>;
  explicit ScriptedBusyHandler(ActionLog* log) : log_(log) {}
  void set_reaction(Reaction r) { reaction_ = std::move(r); }

  absl::Status OnBusy(const VolumeRecord& record, BusyStage stage, const absl::Status& busy,
                      int attempt, std::chrono::steady_clock::time_point) override {
    AppendAction(log_, absl::StrCat("busy ", stage == BusyStage::kUnmount ? "unmount" : "unmap",
                                    " attempt ", attempt));
    if (reaction_) return reaction_(record, stage, attempt);
    return absl::FailedPreconditionError(absl::StrCat("held: ", busy.message()));
  }

 private:
  ActionLog* log_;
  Reaction reaction_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_TESTING_SCRIPTED_BUSY_HANDLER_H_
