// Counting CSI calls: every RPC by method and code, NodeUnstageVolume by outcome, and the
// volumes whose unstage is blocked by a holder right now.
#ifndef RBDCSI_DRIVER_RPC_METRICS_H_
#define RBDCSI_DRIVER_RPC_METRICS_H_

#include "driver/rpc.h"
#include "metrics/metrics.h"

namespace rbdcsi {

// An observer for CallTracker::SetObserver that records into `metrics` (which must outlive it).
// A NodeUnstageVolume refused with FAILED_PRECONDITION (device held) marks its volume blocked
// until an unstage of it succeeds.
CallTracker::Observer RpcMetricsObserver(Metrics& metrics);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_RPC_METRICS_H_
