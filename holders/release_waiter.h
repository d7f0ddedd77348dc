// Waiting for holders that let go by themselves, on the kernel's events rather than on a timer.
//
// For each holder process: a pidfd, readable when the process exits. For each holding mount
// namespace: its /proc/PID/mountinfo, which poll() reports with POLLPRI|POLLERR whenever that
// namespace's mount table changes (a propagated unmount, a namespace being torn down). An open
// mountinfo pins its namespace, and with it the device, after the last process in it exits, so
// the waiter closes a process's mountinfo descriptors as soon as its pidfd fires.
//
// Use: Watch(report) right after a scan, re-try the release once (something may have changed
// between the scan and Watch), then WaitForChange() and re-try after each event until the budget
// is spent. Not thread-safe; one waiter per unstage attempt.
#ifndef RBDCSI_HOLDERS_RELEASE_WAITER_H_
#define RBDCSI_HOLDERS_RELEASE_WAITER_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/fd.h"
#include "holders/holders.h"

namespace rbdcsi {

// What a busy handler waits with; ReleaseWaiter below is the kernel-driven one, tests use
// holders' FakeReleaseWatcher. Not thread-safe; one per unstage attempt.
class ReleaseWatcher {
 public:
  virtual ~ReleaseWatcher() = default;
  // Watches the holders of `report` that have a process (see ReleaseWaiter::Watch).
  virtual absl::Status Watch(const HolderReport& report) = 0;
  // True after an event (re-check now), false when `budget` passed without one.
  virtual absl::StatusOr<bool> WaitForChange(std::chrono::milliseconds budget) = 0;
  // What woke the last WaitForChange(), for logs.
  virtual const std::string& last_event() const = 0;
};

// Makes a fresh watcher for each wait.
using ReleaseWatcherFactory = std::function<std::unique_ptr<ReleaseWatcher>()>;

class ReleaseWaiter : public ReleaseWatcher {
 public:
  ReleaseWaiter() = default;
  ReleaseWaiter(const ReleaseWaiter&) = delete;
  ReleaseWaiter& operator=(const ReleaseWaiter&) = delete;

  // Adds the holders of `report` that have a process (pass a report filtered to the holders that
  // release by themselves to wait only for those). A process that is already gone counts as an
  // event: the next WaitForChange() returns true at once. Holders without a process (stacked
  // devices, swap, namespaces without a process) give nothing to wait on and are skipped.
  // Returns INTERNAL when the kernel cannot create a pidfd (Linux < 5.3) or opening fails for a
  // reason other than the process being gone.
  absl::Status Watch(const HolderReport& report) override;

  // Waits until one event arrives or `budget` passes: true after an event (re-check now), false
  // on timeout. Returns false at once when nothing is watched. Never sleeps on a timer. INTERNAL
  // if poll() fails.
  absl::StatusOr<bool> WaitForChange(std::chrono::milliseconds budget) override;

  // What woke the last WaitForChange(), for logs: "pid 123 exited", "the mount table of mount
  // namespace 4026532871 changed".
  const std::string& last_event() const override { return last_event_; }

  int watched_processes() const;
  int watched_namespaces() const;

  // Closes every descriptor (also done on destruction).
  void Reset();

 private:
  struct Entry {
    enum class Type { kPidfd, kMountInfo } type;
    pid_t pid = 0;    // The process (for kMountInfo: the one it was opened through).
    uint64_t ns = 0;  // kMountInfo: the namespace.
    UniqueFd fd;
  };
  absl::Status WatchProcess(pid_t pid);
  absl::Status WatchNamespace(pid_t pid, pid_t tid, uint64_t ns);

  std::vector<Entry> entries_;
  std::string pending_event_;  // An event noticed by Watch(), delivered by the next wait.
  std::string last_event_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_HOLDERS_RELEASE_WAITER_H_
