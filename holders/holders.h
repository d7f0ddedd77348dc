// Who holds a block device: the scan behind unstage's busy path and `rbdcsi holders`.
//
// A device is held by a mount of it in any mount namespace (with or without a process in it),
// an open descriptor on its node, a process whose cwd/root/executable/fd lives on its filesystem
// (what a lazy unmount leaves behind), a block device stacked on it, or an active swap on it.
// Mount namespaces are compared by device number, never by path: paths differ between
// namespaces, major:minor does not.
#ifndef RBDCSI_HOLDERS_HOLDERS_H_
#define RBDCSI_HOLDERS_HOLDERS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "holders/cgroup.h"
#include "holders/procfs.h"

namespace rbdcsi {
namespace holders_internal {
struct Namespace;
}  // namespace holders_internal

enum class HolderKind {
  kMount,             // A mount of the device (or a partition of it) in some mount namespace.
  kOpenDevice,        // A descriptor open on the device node.
  kFileOnFilesystem,  // A process's cwd, root, executable or fd on the device's filesystem.
  kStackedDevice,     // dm / LUKS / LVM / md device built on the device.
  kSwap,              // Active swap on the device or in a file on its filesystem.
};

// Whether a mount holder goes away when the host unmounts its mount (DESIGN.md).
enum class PropagationClass {
  kNone,     // Not a mount holder.
  kPending,  // A propagation peer or (transitive) slave of the host mount: the host unmount
             // removes it.
  kPrivate,  // Nothing links it to the host mount: it stays until its namespace dies.
};

struct Holder {
  HolderKind kind = HolderKind::kMount;
  // The process that holds the device, or that owns the holding mount namespace (its lowest
  // pid). 0 when no process is involved (namespace without process, stacked device, swap).
  pid_t pid = 0;
  pid_t tid = 0;  // Set when only this thread (not its process) is in the holding namespace.
  std::string comm;
  std::string cmdline;  // Arguments joined by spaces.
  ContainerIdentity container;
  bool exiting = false;  // The process is in exit (PF_EXITING) or a zombie.

  // kMount.
  uint64_t mount_namespace = 0;  // Inode, as in /proc/PID/ns/mnt "mnt:[N]".
  bool host_namespace = false;   // The scanning process's own mount namespace.
  int processes_in_namespace = 0;
  std::string mount_point;  // As seen inside that namespace.
  int mount_id = 0;
  std::vector<std::string> propagation_tags;  // "shared:N", "master:N", ...
  PropagationClass propagation = PropagationClass::kNone;
  // pid == 0: where the namespace's nsfs file is bind-mounted (keeping it alive), if known, and
  // in which mount namespace that path is.
  std::string namespace_pinned_at;
  uint64_t namespace_pinned_in = 0;

  // kOpenDevice / kFileOnFilesystem: "fd 5", "cwd", "root", "exe"; and the path it points to.
  std::string file;
  std::string path;
  int other_files = 0;  // Further descriptors/slots of the same process on the device or its fs.
  // kStackedDevice / kSwap.
  StackedDevice stacked;
  std::string swap_path;

  // Pending mounts and exiting processes let go without anyone's help.
  bool ReleasesByItself() const {
    return exiting || (kind == HolderKind::kMount && propagation == PropagationClass::kPending);
  }
};

// How mount namespaces without a process were looked for.
enum class NamespaceMethod {
  kKernel,  // nsfs NS_MNT_GET_NEXT iteration + listmount/statmount: every namespace is seen.
  kProc,    // /proc only: such namespaces are found only through bind-mounted nsfs files.
};

struct HolderReport {
  DeviceNumber device;
  std::vector<DeviceNumber> partitions;
  std::vector<Holder> holders;
  NamespaceMethod method = NamespaceMethod::kProc;
  std::string method_note;  // Why the kernel method was not used, when it was not.
  int processes_scanned = 0;
  int namespaces_scanned = 0;  // Distinct mount namespaces whose mount table was read.
  std::chrono::microseconds duration{0};

  bool held() const { return !holders.empty(); }
  // True when there are holders and every one releases by itself: waiting helps.
  bool OnlySelfReleasing() const;
};

struct ScanOptions {
  // Peer group ("shared:N") of the host mount of the device that was or will be unmounted, e.g.
  // the staging mount. Mounts that are its peers or (transitive) slaves are kPending.
  std::optional<int> host_peer_group;
  // Mount id of that host mount in the scanner's namespace: it is kPending too (the caller
  // unmounts it), even when it is not shared.
  std::optional<int> host_mount_id;
  // Processes whose descriptors are not holders (e.g. the caller's own probe). The scanner's
  // own transient descriptors are always excluded.
  std::vector<pid_t> exclude_pids;
  // Look at descriptors/cwd/root/exe of every process (the costliest part of a scan).
  bool scan_process_files = true;
};

// Thread-compatible: one Scan at a time per scanner.
class HolderScanner {
 public:
  explicit HolderScanner(ProcFs& procfs) : procfs_(procfs) {}

  // From now on, holders in containers also get their pod's and container's names from `namer`
  // (which must outlive the scanner); nullptr turns that off.
  void set_container_namer(const ContainerNamer* namer) { namer_ = namer; }

  // Finds every holder of the block device major:minor (and of its partitions). Processes that
  // vanish during the scan are skipped. Returns INTERNAL only when /proc cannot be listed at all;
  // an empty report means nothing holds the device.
  absl::StatusOr<HolderReport> Scan(unsigned major, unsigned minor, const ScanOptions& options);

 private:
  struct ScanState;
  // The steps of Scan(), in order.
  void FindDevices(unsigned major, unsigned minor, ScanState& s);
  absl::Status ScanProcesses(ScanState& s);
  void AddFileHolders(pid_t pid, uint64_t ns, ScanState& s);
  void AddThreadNamespaces(pid_t pid, uint64_t ns, ScanState& s);
  void ScanKernelNamespaces(ScanState& s);
  void ScanProcNamespaces(ScanState& s);
  const std::vector<MountInfo>& MatchingMounts(ScanState& s);  // Of text_.
  void AddMounts(uint64_t ns, const holders_internal::Namespace* entry,
                 const std::vector<MountInfo>& mounts, ScanState& s);
  void AddDeviceHolders(ScanState& s);
  void AddDetails(ScanState& s);

  ProcFs& procfs_;
  const ContainerNamer* namer_ = nullptr;
  // Reused between processes so a scan does not allocate per process.
  std::vector<pid_t> pids_;
  std::vector<pid_t> tids_;
  std::vector<ProcessFile> files_;
  std::string text_;
};

std::string_view HolderKindName(HolderKind kind);               // "mount", "open-device", ...
std::string_view PropagationClassName(PropagationClass klass);  // "", "pending", "private"
std::string_view NamespaceMethodName(NamespaceMethod method);   // "kernel", "proc"

// Calls fn(line) for each line of mountinfo text whose third field (major:minor) is one of
// `devices` ("250:0"). Cheap: only matching lines are handed on for parsing.
void ForEachMountLineOf(std::string_view text, const std::vector<std::string>& devices,
                        const std::function<void(std::string_view)>& fn);

}  // namespace rbdcsi

#endif  // RBDCSI_HOLDERS_HOLDERS_H_
