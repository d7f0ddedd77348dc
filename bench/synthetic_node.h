// A synthetic Kubernetes-like node for holder_bench: many mounts, mount namespaces, processes and
// threads, built with real kernel objects inside the benchmark's own private mount namespace.
//
// Every process forked here gets PR_SET_PDEATHSIG(SIGKILL): it dies with the (single-threaded)
// benchmark worker even if that is killed, so nothing outlives a run.
#ifndef RBDCSI_BENCH_SYNTHETIC_NODE_H_
#define RBDCSI_BENCH_SYNTHETIC_NODE_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rbdcsi {

struct NodeShape {
  int mounts = 500;      // Bind mounts added to the (copied) mount table of every namespace.
  int namespaces = 100;  // Private mount namespaces, like containers.
  int processes = 1000;  // Spread evenly over the namespaces.
  int threads = 4;       // Per process, main thread included.
};

// Forks a process named `name` (its comm) that runs `setup` in the child, reports readiness and
// then waits to be killed. Returns once the child is ready; INTERNAL if `setup` failed.
absl::StatusOr<pid_t> ForkHolder(const std::string& name, const std::function<bool()>& setup);

// SIGKILL and reap. Safe on 0.
void KillAndReap(pid_t pid);

class SyntheticNode {
 public:
  SyntheticNode() = default;
  SyntheticNode(const SyntheticNode&) = delete;
  SyntheticNode& operator=(const SyntheticNode&) = delete;
  ~SyntheticNode() { Stop(); }

  // Adds `count` bind mounts of one directory under `dir` to the calling process's namespace.
  absl::Status AddMounts(const std::string& dir, int count);

  // Forks shape.processes processes with shape.threads threads each; the first
  // shape.namespaces of them unshare a private mount namespace and the others join one of
  // those. Returns when all are ready.
  absl::Status StartProcesses(const NodeShape& shape);

  int processes() const { return static_cast<int>(pids_.size()); }

  // Kills and reaps every process.
  void Stop();

 private:
  std::vector<pid_t> pids_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_BENCH_SYNTHETIC_NODE_H_
