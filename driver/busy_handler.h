// What unstage does when the kernel says the device (or the staging mount) is busy.
#ifndef RBDCSI_DRIVER_BUSY_HANDLER_H_
#define RBDCSI_DRIVER_BUSY_HANDLER_H_

#include <chrono>
#include <memory>

#include "absl/status/status.h"
#include "base/clock.h"
#include "driver/volume_record.h"

namespace rbdcsi {

enum class BusyStage { kUnmount, kUnmap };

// One operation's share of busy handling: every busy unmount and unmap of one NodeStage or
// NodeUnstage call counts against one wait budget, from the first time it met a busy device.
struct BusyBudget {
  std::chrono::steady_clock::time_point since{};
  int attempts = 0;

  // Call on each busy result: returns the attempt number (from 0), starting the clock at 0.
  int Next(Clock& clock) {
    if (attempts == 0) since = clock.Now();
    return attempts++;
  }
};

class BusyHandler {
 public:
  virtual ~BusyHandler() = default;

  // Called after an unmount or unmap of `record`'s device failed with `busy` (IsBusy()).
  // Returns OK when the caller should try again now (something was released), or the status
  // to return to the CO: FAILED_PRECONDITION naming what holds the device and how to fix it.
  // It may wait, within its own bounded budget, for holders that release by themselves.
  // `attempt` counts calls for this operation, from 0; `since` is when this operation first
  // found the device busy, so that waits of one operation share one budget.
  virtual absl::Status OnBusy(const VolumeRecord& record, BusyStage stage, const absl::Status& busy,
                              int attempt, std::chrono::steady_clock::time_point since) = 0;
};

// Reports the busy error as it is, with the volume and a hint; never retries.
std::unique_ptr<BusyHandler> NewPlainBusyHandler();

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_BUSY_HANDLER_H_
