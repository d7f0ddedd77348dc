// The pieces of a holder scan that need no scanner state: device and mount helpers, what a
// process is (comm, cmdline, container, exiting), classifying mounts as pending or private, and
// swap holders. Internal to holders/ (holders.cc); tests use HolderScanner.
#ifndef RBDCSI_HOLDERS_SCAN_PARTS_H_
#define RBDCSI_HOLDERS_SCAN_PARTS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/device_number.h"
#include "holders/holders.h"
#include "holders/procfs.h"
#include "mounter/mountinfo.h"

namespace rbdcsi::holders_internal {

std::string DeviceText(DeviceNumber d);  // "250:0"
bool Contains(const std::vector<DeviceNumber>& devices, DeviceNumber d);

// A mount namespace seen through /proc, and the task whose files show it.
struct Namespace {
  pid_t pid = 0;
  pid_t tid = 0;
  int processes = 0;
  bool weak = true;  // Named after the scanner itself or a kernel thread: replace if possible.
};

// Where a namespace's nsfs file is bind-mounted (which keeps the namespace alive).
struct Pin {
  std::string path;  // Mount point of the nsfs bind mount, in namespace `in`.
  uint64_t in = 0;   // Namespace where that path is.
  pid_t pid = 0;     // A process there (for /proc/PID/root), 0 if none.
};

// "mnt:[4026532871]" (the root of a bind-mounted nsfs file) -> 4026532871.
std::optional<uint64_t> PinnedNamespace(const MountInfo& m);

// "cwd", "root", "exe" or "fd N".
std::string FileDescription(const ProcessFile& f);

struct ProcessDetails {
  std::string comm;
  std::string cmdline;
  ContainerIdentity container;
  bool exiting = false;
};
ProcessDetails ReadDetails(ProcFs& procfs, pid_t pid);

// A kMount holder for mount `m` in namespace `ns`, without its process.
Holder MountHolder(const MountInfo& m, uint64_t ns);

// Marks each mount holder pending or private. Slaves of slaves count: a group H whose mounts
// receive from a pending group is pending too (e.g. a container runtime's rslave copy that is
// itself shared with a nested namespace).
void Classify(const ScanOptions& options, std::vector<Holder>& holders);

// Appends a kSwap holder for each active swap on one of `devices` or on a file on them.
void ScanSwaps(ProcFs& procfs, const std::vector<DeviceNumber>& devices,
               std::vector<Holder>& holders);

}  // namespace rbdcsi::holders_internal

#endif  // RBDCSI_HOLDERS_SCAN_PARTS_H_
