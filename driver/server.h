// The gRPC server on a unix socket: socket hygiene, services, graceful stop.
#ifndef RBDCSI_DRIVER_SERVER_H_
#define RBDCSI_DRIVER_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "driver/rpc.h"

namespace rbdcsi {

struct ServerOptions {
  std::string socket_path;  // already parsed from the endpoint
  std::chrono::milliseconds grace{std::chrono::seconds(10)};
};

// Removes a stale socket left by an earlier run and refuses a socket another process serves.
// FAILED_PRECONDITION when a server answers on `path` or `path` exists and is not a socket.
absl::Status PrepareSocketPath(const std::string& path);

// Owns the running grpc::Server. Not copyable; Start once, Shutdown once.
class Server {
 public:
  explicit Server(ServerOptions options) : options_(std::move(options)) {}
  ~Server();

  // The services' calls report to this, so Shutdown waits for exactly the calls in flight.
  CallTracker* tracker() { return &tracker_; }

  // Services must outlive the server.
  void AddService(grpc::Service* service) { services_.push_back(service); }

  // Prepares the socket path (creating its directory), starts serving, sets the socket's mode
  // to 0660. FAILED_PRECONDITION when another server listens there; UNAVAILABLE when gRPC
  // could not bind.
  absl::Status Start();

  // Refuses new calls (UNAVAILABLE), lets calls in flight finish for up to the grace period,
  // then stops gRPC (cancelling what is left) and removes the socket file. Blocks until done.
  void Shutdown();

 private:
  const ServerOptions options_;
  std::vector<grpc::Service*> services_;
  std::unique_ptr<grpc::Server> server_;
  CallTracker tracker_;
  ino_t socket_inode_ = 0;  // so Shutdown removes only the socket this server created
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_SERVER_H_
