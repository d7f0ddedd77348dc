// A CommandRunner that times every command it runs and counts the failures.
#ifndef RBDCSI_METRICS_COMMAND_RUNNER_H_
#define RBDCSI_METRICS_COMMAND_RUNNER_H_

#include <memory>
#include <string>
#include <vector>

#include "base/command.h"
#include "metrics/metrics.h"

namespace rbdcsi {

// The label a command is counted under: the program's base name and up to two leading known
// subcommands ("rbd device map" for rbd device map POOL/IMG --id X), so that image names and
// other arguments never become label values.
std::string CommandLabel(const std::vector<std::string>& argv);

// Wraps `inner` (not owned; must outlive this); thread-safe as `inner` is.
std::unique_ptr<CommandRunner> NewMeasuredCommandRunner(CommandRunner* inner, Metrics& metrics);

}  // namespace rbdcsi

#endif  // RBDCSI_METRICS_COMMAND_RUNNER_H_
