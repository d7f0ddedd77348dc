// Converts PersistentVolumes of the in-tree `kubernetes.io/rbd` plugin (removed from Kubernetes
// in 1.31) into CSI PersistentVolumes served by rbdcsi, for the same images: nothing is copied.
#ifndef RBDCSI_MIGRATE_INTREE_PV_H_
#define RBDCSI_MIGRATE_INTREE_PV_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace rbdcsi {

struct MigrateOptions {
  std::string driver_name = "rbd.rbdcsi.dev";
  std::string mapper = "krbd";  // the mapper the node uses for these volumes
};

struct MigrateResult {
  std::vector<nlohmann::json> volumes;  // converted PVs, in input order
  // One line per object that could not be converted: "PersistentVolume NAME: why".
  std::vector<std::string> refusals;
  // One line per converted object whose meaning changes in a way the operator must know.
  std::vector<std::string> warnings;
};

// Converts every object in `objects` (PersistentVolumes, or Lists/PersistentVolumeLists of
// them). Kept: name, labels, capacity, access modes, volume mode, reclaim policy, storage class,
// mount options, node affinity, the claim reference without uid/resourceVersion (so a recreated
// claim binds again). Mapped: monitors, pool (default "rbd"), image, user (default "admin"),
// secretRef (the claim's namespace when it names none), fsType, readOnly. Dropped: status, uid,
// resourceVersion, timestamps, managed fields, the in-tree provisioner's annotations.
// Refused (listed in `refusals`, never in `volumes`): objects that are not in-tree rbd PVs, PVs
// without monitors or image, PVs whose key is only in a keyring file on the nodes (no
// secretRef), a secretRef without a namespace to resolve it in, ReadWriteMany access, names
// that cannot be an rbd pool or image. Never fails as a whole.
MigrateResult MigrateInTreePvs(const std::vector<nlohmann::json>& objects,
                               const MigrateOptions& options);

}  // namespace rbdcsi

#endif  // RBDCSI_MIGRATE_INTREE_PV_H_
