// Parsing of /proc/PID/cgroup, and telling from it which container and pod a process belongs to.
//
// Used to name the owner of a mount namespace that holds a device. Thread-safe (no shared state).
#ifndef RBDCSI_HOLDERS_CGROUP_H_
#define RBDCSI_HOLDERS_CGROUP_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rbdcsi {

// One line of /proc/PID/cgroup: "hierarchy-ID:controller-list:cgroup-path".
// cgroup v1: "12:memory:/kubepods/..." or "1:name=systemd:/..."; cgroup v2: "0::/...".
struct CgroupLine {
  int hierarchy_id = 0;
  std::vector<std::string> controllers;  // Empty for the v2 line.
  std::string path;                      // As printed; may itself contain ':'.
};

// Parses the whole file. Empty lines are skipped. Returns INVALID_ARGUMENT naming the 1-based
// line number when a line lacks its two ':' separators or its hierarchy id is not a number.
absl::StatusOr<std::vector<CgroupLine>> ParseCgroupFile(std::string_view text);

struct ContainerIdentity {
  std::string container_id;  // 64 hex digits, as the runtime names the container.
  std::string pod_uid;       // Kubernetes pod UID with dashes, e.g. 7c1e2f3a-1b2c-4d5e-8f90-...
  std::string runtime;       // "containerd", "cri-o", "docker", or "" when unknown.
  // Filled by a ContainerNamer when the container runtime could be asked; empty otherwise.
  std::string pod_namespace;
  std::string pod_name;
  std::string container_name;
};

// Adds the Kubernetes names (pod namespace/name, container name) to an identity that has a
// container id, from wherever it can learn them (the node's container runtime). Best effort:
// leaves the names empty when it cannot. Implementations are thread-safe.
class ContainerNamer {
 public:
  virtual ~ContainerNamer() = default;
  virtual void Name(ContainerIdentity& identity) const = 0;
};

// Best effort, never fails: recognises the cgroup names that kubelet (systemd and cgroupfs
// drivers), containerd, CRI-O and Docker create, for cgroup v1 and v2. Unparseable lines are
// ignored; fields stay empty when the process is not in a recognised container or pod (e.g. a
// host service, or a path hidden by a cgroup namespace, which reads as "0::/").
ContainerIdentity IdentifyContainer(std::string_view cgroup_text);

}  // namespace rbdcsi

#endif  // RBDCSI_HOLDERS_CGROUP_H_
