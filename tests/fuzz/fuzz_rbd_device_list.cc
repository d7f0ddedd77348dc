// libFuzzer target: `rbd device list --format json` parsing and the decoding of rbd's output
// into error messages.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "rbd/krbd_mapper.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto entries = rbdcsi::ParseRbdDeviceList(text);
  if (entries.ok()) {
    for (const rbdcsi::RbdDeviceEntry& e : *entries) {
      FUZZ_CHECK(!e.pool.empty() && !e.name.empty() && !e.device.empty());
    }
  }
  const std::string words = rbdcsi::DecodeCommandOutput(text);
  FUZZ_CHECK(words.size() <= 1003);
  for (char c : words) FUZZ_CHECK(c >= 0x20 && c < 0x7f);  // one printable line
  return 0;
}
