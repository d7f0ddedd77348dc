// libFuzzer target: the /proc/PID/cgroup parser and the container identification built on it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "holders/cgroup.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto lines = rbdcsi::ParseCgroupFile(text);
  if (lines.ok()) {
    for (const rbdcsi::CgroupLine& line : *lines) FUZZ_CHECK(line.path.size() <= size);
  }
  const rbdcsi::ContainerIdentity id = rbdcsi::IdentifyContainer(text);
  FUZZ_CHECK(id.container_id.size() <= size && id.pod_uid.size() <= size);
  return 0;
}
