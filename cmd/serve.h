// `rbdcsi serve`: builds the real OS implementations, the services and the server.
#ifndef RBDCSI_CMD_SERVE_H_
#define RBDCSI_CMD_SERVE_H_

#include "cmd/flags.h"

namespace rbdcsi {

// Serves until SIGTERM or SIGINT. Returns the process exit code: 0 after a clean stop,
// 1 when the server could not start, 2 for bad flags.
int RunServe(ServeFlags flags);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_SERVE_H_
