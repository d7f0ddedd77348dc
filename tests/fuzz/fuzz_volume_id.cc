// libFuzzer target: volume-id and snapshot-id decoding. Whatever decodes is a valid image and
// encodes back to exactly the input (one id per image); junk is refused with the documented
// codes, never anything else.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "rbd/image_id.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool DocumentedCode(const absl::Status& s) {
  return absl::IsInvalidArgument(s) || absl::IsNotFound(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto volume = rbdcsi::DecodeVolumeId(text);
  if (volume.ok()) {
    FUZZ_CHECK(rbdcsi::ValidateImageId(*volume).ok());
    FUZZ_CHECK(rbdcsi::EncodeVolumeId(*volume) == text);
    FUZZ_CHECK(text.size() <= rbdcsi::kMaxIdLength);
  } else {
    FUZZ_CHECK(DocumentedCode(volume.status()));
  }
  auto snapshot = rbdcsi::DecodeSnapshotId(text);
  if (snapshot.ok()) {
    FUZZ_CHECK(rbdcsi::ValidateSnapshotId(*snapshot).ok());
    FUZZ_CHECK(rbdcsi::EncodeSnapshotId(*snapshot) == text);
  } else {
    FUZZ_CHECK(DocumentedCode(snapshot.status()));
  }
  return 0;
}
