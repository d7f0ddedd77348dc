#include "base/fault_point.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace rbdcsi {

void FaultPoint(std::string_view name) {
#ifdef RBDCSI_FAULT_POINTS
  static const char* const wanted = std::getenv("RBDCSI_FAULT_POINT");
  if (wanted == nullptr || name != wanted) return;
  const std::string line = "fault point " + std::string(name) + " reached\n";
  if (write(STDERR_FILENO, line.data(), line.size()) < 0) _exit(99);
  raise(SIGSTOP);
#else
  (void)name;
#endif
}

}  // namespace rbdcsi
