#include "metrics/command_runner.h"

#include <chrono>

namespace rbdcsi {
namespace {

class MeasuredRunner final : public CommandRunner {
 public:
  MeasuredRunner(CommandRunner* inner, Metrics& metrics) : inner_(inner), metrics_(metrics) {}

  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                    const CommandOptions& options) override {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<CommandResult> result = inner_->Run(argv, options);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string_view outcome = "ok";
    if (absl::IsDeadlineExceeded(result.status())) {
      outcome = "timeout";
    } else if (!result.ok()) {
      outcome = "error";
    } else if (result->exit_code != 0) {
      outcome = "failed";
    }
    metrics_.Command(CommandLabel(argv), outcome, seconds);
    return result;
  }

 private:
  CommandRunner* inner_;
  Metrics& metrics_;
};

// Subcommands of the programs the plugin runs (rbd, rbd-nbd, losetup, mkfs, ...). Only these
// become label words: an image name that happens to look like a word must not.
bool IsSubcommand(const std::string& arg) {
  static const char* const kWords[] = {"device", "map",    "unmap", "list",   "showmapped",
                                       "attach", "detach", "info",  "status", "resize"};
  for (const char* w : kWords) {
    if (arg == w) return true;
  }
  return false;
}

}  // namespace

std::string CommandLabel(const std::vector<std::string>& argv) {
  if (argv.empty()) return "";
  std::string label = argv[0].substr(argv[0].rfind('/') + 1);
  for (size_t i = 1; i < argv.size() && i < 3 && IsSubcommand(argv[i]); ++i) {
    label += " " + argv[i];
  }
  return label;
}

std::unique_ptr<CommandRunner> NewMeasuredCommandRunner(CommandRunner* inner, Metrics& metrics) {
  return std::make_unique<MeasuredRunner>(inner, metrics);
}

}  // namespace rbdcsi
