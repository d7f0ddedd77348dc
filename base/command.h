// Running external programs (mkfs, rbd, ...) behind an interface tests can replace.
#ifndef RBDCSI_BASE_COMMAND_H_
#define RBDCSI_BASE_COMMAND_H_

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rbdcsi {

struct CommandResult {
  int exit_code = 0;  // 128+signal when the child was killed by a signal.
  std::string out;
  std::string err;
};

struct CommandOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};
  std::string stdin_data;                  // Written to the child's stdin, then closed.
  std::map<std::string, std::string> env;  // Added to (or overriding) the inherited environment.
};

// Runs argv[0] (looked up in PATH) with the given arguments; never through a shell.
// Every child is bounded: it runs in a process group of its own, which is killed (SIGKILL) at
// the timeout, and it gets SIGKILL when the thread that started it dies (PR_SET_PDEATHSIG),
// so no child outlives a killed plugin. Implementations are thread-safe.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Returns the exit code and captured output. A non-zero exit is not an error status; errors
  // are: NOT_FOUND when the program does not exist, DEADLINE_EXCEEDED when it ran past the
  // timeout (its process group is killed; Run returns at most ~5 s later even when the child
  // is stuck in the kernel), INTERNAL when it could not be started.
  virtual absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                            const CommandOptions& options = {}) = 0;
};

std::unique_ptr<CommandRunner> NewRealCommandRunner();

// "prog arg1 arg2" for messages; callers must not pass secrets in argv in the first place.
std::string FormatArgv(const std::vector<std::string>& argv);

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_COMMAND_H_
