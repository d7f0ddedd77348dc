// `rbdcsi serve`: builds the real OS implementations, the services and the server.
#ifndef RBDCSI_CMD_SERVE_H_
#define RBDCSI_CMD_SERVE_H_

#include "cmd/flags.h"

namespace rbdcsi {

// Serves until SIGTERM or SIGINT. Returns the process exit code: 0 after a clean stop,
// 1 when the server could not start, 2 for bad flags.
int RunServe(ServeFlags flags);

// For a binary that does not serve the controller (ServesController()): replaces this process
// with the one that does (kControllerBinary next to /proc/self/exe), same arguments. Returns 2
// (with a message on stderr) only when that fails.
int ExecController(char** argv);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_SERVE_H_
