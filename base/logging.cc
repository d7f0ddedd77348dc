#include "base/logging.h"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/text.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace rbdcsi {
namespace {

// Applies EscapeText to the message; as JSON, quotes and backslashes of the escaped text are
// escaped once more, so that the JSON string decodes to exactly the text format's message.
class EscapedMessage : public spdlog::custom_flag_formatter {
 public:
  explicit EscapedMessage(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string text = EscapeText(std::string_view(msg.payload.data(), msg.payload.size()));
    if (!json_) {
      dest.append(text.data(), text.data() + text.size());
      return;
    }
    for (char c : text) {
      if (c == '"' || c == '\\') dest.push_back('\\');
      dest.push_back(c);
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>(json_);
  }

 private:
  const bool json_;
};

std::mutex config_mu;
spdlog::level::level_enum config_level = spdlog::level::info;
bool config_json = false;

void Configure(spdlog::logger& logger) {
  logger.set_level(config_level);
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<EscapedMessage>('*', config_json)
      .set_pattern(
          config_json ? R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","logger":"%n","msg":"%*"})"
                      : "%Y-%m-%dT%H:%M:%S.%e%z %L %n: %*");
  logger.set_formatter(std::move(formatter));
}

}  // namespace

absl::Status InitLogging(std::string_view level, std::string_view format) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level '", AsAbsl(level),
                     "': use trace, debug, info, warn, error, critical or off"));
  }
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log format '", AsAbsl(format), "': use text or json"));
  }
  std::lock_guard<std::mutex> lock(config_mu);
  config_level = parsed;
  config_json = format == "json";
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { Configure(*l); });
  return absl::OkStatus();
}

std::shared_ptr<spdlog::logger> Logger(const std::string& component) {
  std::lock_guard<std::mutex> lock(config_mu);
  if (auto existing = spdlog::get(component)) return existing;
  auto logger = spdlog::stderr_color_mt(component, spdlog::color_mode::never);
  Configure(*logger);
  return logger;
}

}  // namespace rbdcsi
