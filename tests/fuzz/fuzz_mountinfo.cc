// libFuzzer target: the mountinfo parser, on whole files and single lines.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mounter/mountinfo.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto mounts = rbdcsi::ParseMountInfo(text);
  if (mounts.ok()) {
    for (const rbdcsi::MountInfo& m : *mounts) {
      // Accessors over the optional fields never throw, whatever the tags say.
      (void)m.shared_peer_group();
      (void)m.master_peer_group();
      (void)m.propagate_from_peer_group();
      (void)rbdcsi::PropagationName(rbdcsi::PropagationOf(m));
    }
  }
  auto line = rbdcsi::ParseMountInfoLine(text.substr(0, text.find('\n')));
  (void)line;
  const std::string unescaped = rbdcsi::UnescapeMountField(text);
  FUZZ_CHECK(unescaped.size() <= text.size());  // escapes only ever shrink
  return 0;
}
