// holder_bench's comparison: one holder of each kind planted on a device, and who finds them
// (rbdcsi's holder scan, grep over every mountinfo, lsof, fuser) in how long.
#ifndef RBDCSI_BENCH_HOLDER_COMPARE_H_
#define RBDCSI_BENCH_HOLDER_COMPARE_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/command.h"
#include "holders/holders.h"

namespace rbdcsi {

struct Planted {
  pid_t mount = 0;  // node_exporter-like process in a private namespace with a copy of the mount.
  pid_t fd = 0;     // Holds the device node open.
  pid_t cwd = 0;    // Working directory on the filesystem after a lazy unmount.
  std::string dm;   // Stacked device-mapper device name, "" when skipped.
};

// One row of the comparison: a tool, its time, and which planted holders it found.
struct Found {
  std::string tool;
  double ms = 0;
  bool mount = false, fd = false, cwd = false, dm = false;
  std::string note;
};

// Mounts `device` at DIR/kubelet/globalmount and DIR/kubelet/lazy and plants the holders: a
// private-namespace copy of the staging mount, an open descriptor, a working directory under a
// lazily unmounted path, and (when device-mapper is there) a stacked dm device, whose name is
// also written to DIR/dm-name for the clean-up; `dm_note` says why it was skipped. Then unmounts
// the staging path, as the host does in the incident.
absl::Status PlantHolders(CommandRunner& runner, const std::string& dir, const std::string& device,
                          Planted& planted, std::string& dm_note);

// Runs `argv` `repeats` times (median time) and reads which planted holders its output names;
// `grep`: the output is grep -l's list of mountinfo paths.
Found RunTool(CommandRunner& runner, const std::string& tool, const std::vector<std::string>& argv,
              const Planted& planted, bool grep, int repeats);

// rbdcsi's scan of device major:minor, `repeats` times after one warm-up (median time); `last`
// gets the last report.
Found ScanWithRbdcsi(HolderScanner& scanner, unsigned major, unsigned minor, const Planted& planted,
                     int repeats, HolderReport* last);

// The rows as a table; `dm`: whether a dm device was planted.
void PrintComparison(const std::vector<Found>& rows, bool dm);

}  // namespace rbdcsi

#endif  // RBDCSI_BENCH_HOLDER_COMPARE_H_
