#include "cmd/serve.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <iostream>

#include "base/logging.h"
#include "base/version.h"
#include "driver/identity.h"
#include "driver/server.h"

namespace rbdcsi {
namespace {

absl::Status MakeDirectory(const std::string& dir, std::filesystem::perms perms) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError("creating " + dir + ": " + ec.message());
  std::filesystem::permissions(dir, perms, ec);
  return absl::OkStatus();
}

}  // namespace

int RunServe(ServeFlags flags) {
  if (absl::Status st = ValidateServeFlags(flags); !st.ok()) {
    std::cerr << "rbdcsi serve: " << st.message() << "\n";
    return 2;
  }
  if (absl::Status st = InitLogging(flags.log_level, flags.log_format); !st.ok()) {
    std::cerr << "rbdcsi serve: --log-level/--log-format: " << st.message() << "\n";
    return 2;
  }
  auto log = Logger("server");
  for (const std::string& dir : {flags.state_dir, flags.data_dir}) {
    if (absl::Status st = MakeDirectory(dir, std::filesystem::perms::owner_all); !st.ok()) {
      log->error("{}", st.message());
      return 1;
    }
  }

  // Signals are taken synchronously by this thread; block them before gRPC starts its threads
  // so that none of those receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  IdentityService identity(
      {flags.driver_name, kVersion, flags.state_dir, /*controller=*/false});
  Server server({flags.socket_path, std::chrono::seconds(flags.grace_seconds)});
  server.AddService(&identity);
  if (absl::Status st = server.Start(); !st.ok()) {
    log->error("cannot serve: {}", st.message());
    return 1;
  }
  log->info("rbdcsi {} serving driver {} for node {}", kVersion, flags.driver_name,
            flags.node_id);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log->info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  server.Shutdown();
  return 0;
}

}  // namespace rbdcsi
