// libFuzzer target: the escaping every log line goes through and secret redaction. Input: the
// secret, a NUL byte, then the text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/text.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string escaped = rbdcsi::EscapeText(input);
  FUZZ_CHECK(rbdcsi::IsValidUtf8(escaped));
  for (char c : escaped) {
    const unsigned char u = static_cast<unsigned char>(c);
    FUZZ_CHECK(u >= 0x20 && u != 0x7f);  // no line break, NUL or other control byte
  }
  const size_t nul = input.find('\0');
  if (nul == std::string_view::npos || nul == 0) return 0;
  const std::string secret(input.substr(0, nul));
  const std::string redacted = rbdcsi::RedactSecrets(input.substr(nul + 1), {secret});
  // Between the placeholders, no piece of the text may still hold the secret.
  std::string_view rest = redacted;
  for (;;) {
    const size_t at = rest.find(rbdcsi::kRedacted);
    FUZZ_CHECK(rest.substr(0, at).find(secret) == std::string_view::npos);
    if (at == std::string_view::npos) break;
    rest.remove_prefix(at + rbdcsi::kRedacted.size());
  }
  return 0;
}
