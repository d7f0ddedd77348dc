// rbdcsi: a CSI plugin for Ceph RBD block volumes. This file only parses the command line and
// hands over to the subcommands.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "CLI/CLI.hpp"
#include "base/version.h"
#include "cmd/flags.h"
#include "cmd/serve.h"

int main(int argc, char** argv) {
  // A child that closes its stdin early must give the writer EPIPE, not kill the plugin.
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{"rbdcsi: CSI plugin for Ceph RBD block volumes that never leaves a device stuck"};
  app.require_subcommand(1);

  rbdcsi::ServeFlags serve_flags;
  CLI::App* serve = app.add_subcommand("serve", "Serve the CSI gRPC services on a unix socket");
  rbdcsi::AddServeFlags(*serve, serve_flags);

  app.add_subcommand("version", "Print the version")->callback([] {
    std::cout << "rbdcsi " << rbdcsi::kVersion << "\n";
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (serve->parsed()) return rbdcsi::RunServe(serve_flags);
  return 0;
}
