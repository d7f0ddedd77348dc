// libFuzzer target: decoding volume records (the files under --state-dir/volumes). Whatever
// decodes must encode and decode again to the same record.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "driver/volume_record.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto record = rbdcsi::DecodeRecord(text);
  if (!record.ok()) return 0;
  const std::string encoded = rbdcsi::EncodeRecord(*record);
  auto again = rbdcsi::DecodeRecord(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(rbdcsi::EncodeRecord(*again) == encoded);
  const std::string name = rbdcsi::RecordStore::FileNameFor(record->volume_id);
  FUZZ_CHECK(name.find('/') == std::string::npos && name.size() <= 255 && name[0] != '.');
  return 0;
}
