// `rbdcsi migrate-pv FILE|-`: prints rbdcsi CSI PersistentVolumes for in-tree rbd ones.
#ifndef RBDCSI_CMD_MIGRATE_PV_H_
#define RBDCSI_CMD_MIGRATE_PV_H_

#include <istream>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "migrate/intree_pv.h"

namespace rbdcsi {

struct MigratePvFlags {
  std::string input = "-";  // a file, or "-" for stdin
  MigrateOptions options;
};

// Registers the `migrate-pv` arguments on `app`.
void AddMigratePvFlags(CLI::App& app, MigratePvFlags& flags);

// Converts the YAML or JSON read from `in` and writes the converted PVs to `out` as YAML
// documents separated by "---", refusals and warnings to `err`. Returns the exit code: 0 when
// every object converted, 1 when some were refused (the others are still printed), 2 when the
// input cannot be read or parsed or holds no object.
int RunMigratePv(const MigratePvFlags& flags, std::istream& in, std::ostream& out,
                 std::ostream& err);

// The same reading flags.input ("-": stdin), writing stdout and stderr.
int RunMigratePv(const MigratePvFlags& flags);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_MIGRATE_PV_H_
