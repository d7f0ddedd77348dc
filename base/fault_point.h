// Named crash points for the crash-injection test (tests/driver/crash_test.cc).
#ifndef RBDCSI_BASE_FAULT_POINT_H_
#define RBDCSI_BASE_FAULT_POINT_H_

#include <string_view>

namespace rbdcsi {

// Compiled in only with the CMake option RBDCSI_FAULT_POINTS (on in the test build, off in
// release images: see the README); otherwise a no-op. When the environment names this point
// (RBDCSI_FAULT_POINT=NAME), the process writes "fault point NAME reached" to stderr and stops
// itself (SIGSTOP) so that the test can SIGKILL it exactly there.
void FaultPoint(std::string_view name);

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_FAULT_POINT_H_
