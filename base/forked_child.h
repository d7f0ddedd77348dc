// Child processes of the plugin: every child dies with the plugin (PR_SET_PDEATHSIG) and every
// wait for one is bounded (the child is killed at the bound). CommandRunner (base/command.h) uses
// these for the programs it executes; RunForkedChild runs a function in a forked child, for the
// few things only a single-threaded process may do (joining another mount namespace).
#ifndef RBDCSI_BASE_FORKED_CHILD_H_
#define RBDCSI_BASE_FORKED_CHILD_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rbdcsi {

// Call first thing in a forked child (async-signal-safe): the child gets SIGKILL when the thread
// that forked it dies. Returns false when that could not be arranged or `parent` (the forking
// process's pid, taken before fork()) had already died; the child must then _exit() at once.
bool DieWithParent(pid_t parent);

// Waits until the child `pid` has exited (it is not reaped) or `deadline` passed; false on the
// latter. Thread-safe.
bool WaitForExit(pid_t pid, std::chrono::steady_clock::time_point deadline);

// Sends SIGKILL to `target` (the child's pid, or minus its process group id to kill what it
// started too) and reaps the child `pid`. A process stuck in the kernel (uninterruptible sleep)
// may take long to die: after ~5 s it is left to a detached thread to reap, so the caller's time
// stays bounded. Thread-safe.
void KillAndReap(pid_t target, pid_t pid);

struct ForkedChildResult {
  int wait_status = 0;  // As waitpid(2) reports it.
  std::string output;   // What the child wrote to its output descriptor.
};

// Forks a child that calls `body(output_fd)` and then exits with status 0 (`body` may _exit()
// with another status itself). In the child only async-signal-safe calls are allowed: no
// allocation, no locks (the parent may be multi-threaded); prepare everything before.
// The child dies with the caller's thread (DieWithParent). The caller collects what the child
// writes to `output_fd` and waits for its exit, all within `timeout`; past it the child is killed
// (SIGKILL) and reaped, and the result is DEADLINE_EXCEEDED naming `what` ("reading the mount
// table of ..."). When no child could be started: the fork or pipe error (ErrnoToStatus).
// Thread-safe.
absl::StatusOr<ForkedChildResult> RunForkedChild(std::string_view what,
                                                 std::chrono::milliseconds timeout,
                                                 const std::function<void(int output_fd)>& body);

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_FORKED_CHILD_H_
