// The kernel's own lists of mount namespaces and of their mounts: the nsfs iteration ioctls
// (Linux 6.9) and listmount/statmount (6.8; other namespaces by id since 6.11). RealProcFs
// (holders/procfs.h) answers ListMountNamespaces and ListNamespaceMounts with these.
#ifndef RBDCSI_HOLDERS_KERNEL_MOUNTS_H_
#define RBDCSI_HOLDERS_KERNEL_MOUNTS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "base/device_number.h"
#include "holders/procfs.h"
#include "mounter/mountinfo.h"

namespace rbdcsi {

// Every mount namespace of the system (ProcFs::ListMountNamespaces). UNIMPLEMENTED when the
// kernel has no mount namespace iteration.
absl::StatusOr<std::vector<KernelMountNamespace>> ListKernelMountNamespaces();

// ProcFs::ListNamespaceMounts. Keeps its buffers from one call to the next, so a scan over many
// namespaces does not allocate per namespace. Thread-compatible.
class KernelMountLister {
 public:
  absl::StatusOr<std::vector<MountInfo>> List(const KernelMountNamespace& ns,
                                              const std::vector<DeviceNumber>& devices);

 private:
  // The ids of every mount of `ns` into ids_; their number.
  absl::StatusOr<size_t> ListIds(const KernelMountNamespace& ns);
  // The mount `id` of namespace `ns_id` when its device is one of `devices`; false when it is
  // not, or was unmounted meanwhile.
  bool Describe(uint64_t ns_id, uint64_t id, const std::vector<DeviceNumber>& devices,
                MountInfo* mount);

  std::vector<uint64_t> ids_;
  std::vector<char> statmount_buffer_ = std::vector<char>(16384);
};

}  // namespace rbdcsi

#endif  // RBDCSI_HOLDERS_KERNEL_MOUNTS_H_
