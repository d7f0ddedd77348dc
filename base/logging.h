// spdlog set-up: one named logger per component, text or JSON lines on stderr.
#ifndef RBDCSI_BASE_LOGGING_H_
#define RBDCSI_BASE_LOGGING_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "spdlog/spdlog.h"

namespace rbdcsi {

// Configures the default level and format for every logger created afterwards and for the
// ones that exist. `level`: trace, debug, info, warn, error, critical, off. `format`: text or
// json. INVALID_ARGUMENT for anything else. Call once at start-up, before threads log.
absl::Status InitLogging(std::string_view level, std::string_view format);

// Returns the named component logger ("driver", "mounter", "rbd", ...), creating it on first
// use. Thread-safe.
std::shared_ptr<spdlog::logger> Logger(const std::string& component);

// Every logger applies EscapeText (base/text.h) to the whole formatted message, so to every
// field in it, in both formats: a field can never forge a line or carry a NUL. The JSON
// format's "msg" is that same escaped text as a JSON string.

}  // namespace rbdcsi

// Lets log lines take abseil's own string_view (not std::string_view in Debian's build) and
// Status values directly.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename Context>
  auto format(absl::string_view s, Context& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};
template <>
struct fmt::formatter<absl::Status> : fmt::formatter<fmt::string_view> {
  template <typename Context>
  auto format(const absl::Status& s, Context& ctx) const {
    const std::string text = absl::StatusCodeToString(s.code()) + ": " + std::string(s.message());
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text), ctx);
  }
};

#endif  // RBDCSI_BASE_LOGGING_H_
