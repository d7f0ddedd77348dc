#include "driver/busy_handler.h"

#include "absl/strings/str_cat.h"

namespace rbdcsi {
namespace {

class PlainBusyHandler : public BusyHandler {
 public:
  absl::Status OnBusy(const VolumeRecord& record, BusyStage stage, const absl::Status& busy, int,
                      std::chrono::steady_clock::time_point) override {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", record.volume_id, ": ", record.device.path, " (", record.device.major, ":",
        record.device.minor, ") is still in use and was not ",
        stage == BusyStage::kUnmount ? "unmounted" : "unmapped", ": ", busy.message(),
        "; the record is kept, so the next NodeUnstageVolume finishes the job once it is free"));
  }
};

}  // namespace

std::unique_ptr<BusyHandler> NewPlainBusyHandler() { return std::make_unique<PlainBusyHandler>(); }

}  // namespace rbdcsi
