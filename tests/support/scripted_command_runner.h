// A CommandRunner that answers from a script and records every command line.
#ifndef RBDCSI_TESTS_SUPPORT_SCRIPTED_COMMAND_RUNNER_H_
#define RBDCSI_TESTS_SUPPORT_SCRIPTED_COMMAND_RUNNER_H_

#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/command.h"

namespace rbdcsi {

class ScriptedCommandRunner : public CommandRunner {
 public:
  // Called during Run(), e.g. to look at a key file the command line names.
  using Hook = std::function<void(const std::vector<std::string>& argv)>;

  // Queues the answer to the next command.
  void Answer(absl::StatusOr<CommandResult> result, Hook hook = nullptr) {
    script_.emplace_back(std::move(result), std::move(hook));
  }
  void Answer(int exit_code, std::string out, std::string err, Hook hook = nullptr) {
    Answer(CommandResult{exit_code, std::move(out), std::move(err)}, std::move(hook));
  }

  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                    const CommandOptions& options) override {
    calls_.push_back(argv);
    options_.push_back(options);
    if (script_.empty()) {
      return absl::InternalError(absl::StrCat("unexpected command: ", FormatArgv(argv)));
    }
    auto [result, hook] = std::move(script_.front());
    script_.pop_front();
    if (hook) hook(argv);
    return result;
  }

  const std::vector<std::vector<std::string>>& calls() const { return calls_; }
  const std::vector<CommandOptions>& options() const { return options_; }
  size_t unanswered() const { return script_.size(); }

 private:
  std::deque<std::pair<absl::StatusOr<CommandResult>, Hook>> script_;
  std::vector<std::vector<std::string>> calls_;
  std::vector<CommandOptions> options_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_SUPPORT_SCRIPTED_COMMAND_RUNNER_H_
