// rbdcsi: a CSI plugin for Ceph RBD block volumes. This file only parses the command line and
// hands over to the subcommands.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "CLI/CLI.hpp"
#include "base/version.h"
#include "cmd/doctor.h"
#include "cmd/flags.h"
#include "cmd/gc.h"
#include "cmd/holders.h"
#include "cmd/image_stores.h"
#include "cmd/migrate_pv.h"
#include "cmd/serve.h"

namespace {

constexpr char kHoldersHelp[] =
    "Show what holds a block device (DEVICE, MAJ:MIN or a mounted PATH); exit 0 when free, 1 "
    "when held, 2 on error";
constexpr char kDoctorHelp[] =
    "Find what will make volumes stick before an unstage fails: private copies of the kubelet "
    "dir or of staged volumes in other mount namespaces, mappings without record, records "
    "without mapping, a kubelet dir that is not shared; exit 0 when none, 1 when found, 2 on "
    "error";
constexpr char kGcHelp[] =
    "Unmap devices of this plugin's loop and fuse mappers that no volume record names, nothing "
    "holds in any mount namespace, and earlier runs saw unrecorded for longer than --grace; "
    "never rbd or nbd devices, never forced; refuses while serve uses the state directory; "
    "exit 0 when done, 1 when an unmap failed, 2 on error";
constexpr char kMigratePvHelp[] =
    "Print rbdcsi CSI PersistentVolumes for in-tree kubernetes.io/rbd ones (YAML or JSON in, "
    "YAML out); exit 0 when all converted, 1 when some were refused, 2 on error";

}  // namespace

int main(int argc, char** argv) {
  // A child that closes its stdin early must give the writer EPIPE, not kill the plugin.
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{"rbdcsi: CSI plugin for Ceph RBD block volumes that never leaves a device stuck"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("rbdcsi ") + rbdcsi::kVersion);

  rbdcsi::ServeFlags serve_flags;
  CLI::App* serve = app.add_subcommand("serve", "Serve the CSI gRPC services on a unix socket");
  rbdcsi::AddServeFlags(*serve, serve_flags);

  rbdcsi::HoldersFlags holders_flags;
  CLI::App* holders = app.add_subcommand("holders", kHoldersHelp);
  rbdcsi::AddHoldersFlags(*holders, holders_flags);

  rbdcsi::DoctorFlags doctor_flags;
  CLI::App* doctor = app.add_subcommand("doctor", kDoctorHelp);
  rbdcsi::AddDoctorFlags(*doctor, doctor_flags);

  rbdcsi::GcFlags gc_flags;
  CLI::App* gc = app.add_subcommand("gc", kGcHelp);
  rbdcsi::AddGcFlags(*gc, gc_flags);

  rbdcsi::MigratePvFlags migrate_flags;
  CLI::App* migrate = app.add_subcommand("migrate-pv", kMigratePvHelp);
  rbdcsi::AddMigratePvFlags(*migrate, migrate_flags);

  app.add_subcommand("version", "Print the version")->callback([] {
    std::cout << "rbdcsi " << rbdcsi::kVersion << "\n";
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (serve->parsed()) {
    // The node plugin's binary links no Ceph library; the controller's does.
    if (!serve_flags.no_controller && !rbdcsi::ServesController()) {
      return rbdcsi::ExecController(argv);
    }
    return rbdcsi::RunServe(serve_flags);
  }
  if (holders->parsed()) return rbdcsi::RunHolders(holders_flags);
  if (doctor->parsed()) return rbdcsi::RunDoctor(doctor_flags);
  if (gc->parsed()) return rbdcsi::RunGc(gc_flags);
  if (migrate->parsed()) return rbdcsi::RunMigratePv(migrate_flags);
  return 0;
}
