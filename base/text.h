// Byte-level text helpers for what crosses a trust boundary: UTF-8 checks and secret redaction.
#ifndef RBDCSI_BASE_TEXT_H_
#define RBDCSI_BASE_TEXT_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace rbdcsi {

// The length (2-4) of the valid UTF-8 sequence that starts at text[i], or 0 when none does
// (ASCII, a stray continuation byte, an overlong form, a surrogate, a code point past
// U+10FFFF, a sequence cut by the end of `text`).
size_t Utf8SequenceLength(std::string_view text, size_t i);

// True when every byte of `text` belongs to a valid UTF-8 sequence (ASCII included).
bool IsValidUtf8(std::string_view text);

// The one escaping of untrusted text for logs and messages: a backslash becomes two, a line
// feed, carriage return or tab becomes \n \r \t, every other control byte, DEL and every byte
// that is not part of valid UTF-8 becomes \xHH. The result is one line of printable, valid UTF-8.
std::string EscapeText(std::string_view text);

// The placeholder RedactSecrets writes in place of a secret.
inline constexpr std::string_view kRedacted = "<redacted>";

// `raw` with every occurrence of every non-empty secret replaced by kRedacted, whatever the
// secret's length or bytes (tabs, non-ASCII, a single character). Works on raw bytes, so it
// must run before any sanitising or truncation of `raw`. Longer secrets are replaced first, so
// a secret that contains a shorter one is still removed whole.
std::string RedactSecrets(std::string_view raw, std::vector<std::string> secrets);

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_TEXT_H_
