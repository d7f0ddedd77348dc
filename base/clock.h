// Time behind an interface, so waits and timeouts are testable without sleeping.
#ifndef RBDCSI_BASE_CLOCK_H_
#define RBDCSI_BASE_CLOCK_H_

#include <chrono>
#include <memory>

namespace rbdcsi {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point Now() = 0;
  virtual void SleepFor(std::chrono::nanoseconds d) = 0;
};

// The process-wide steady clock; thread-safe.
std::unique_ptr<Clock> NewRealClock();

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_CLOCK_H_
