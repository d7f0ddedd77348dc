// Matchers and fixtures shared by rbdcsi's tests.
#ifndef RBDCSI_TESTS_SUPPORT_TEST_SUPPORT_H_
#define RBDCSI_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace rbdcsi {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status: " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code, "has code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s;
  return s.code() == code;
}

MATCHER_P(IsOkAndHolds, value_matcher, "is OK and holds a value that matches") {
  if (!arg.ok()) {
    *result_listener << "status: " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

MATCHER_P2(StatusIs, code, message_matcher, "has code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

// A directory under $TMPDIR (or /tmp) named rbdcsi-<tag>-XXXXXX, removed recursively on
// destruction. It does not unmount anything: tests unmount what they mounted first.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process started with argv (no shell, argv[0] looked up in $PATH), stdin from /dev/null,
// stdout/stderr captured to files; killed with SIGKILL and reaped on destruction if still running.
//
// The child gets SIGKILL as its parent-death signal, so it cannot outlive a test that crashes or
// is killed on a timeout. The kernel sends that signal when the *thread* that started the child
// exits, so start children that must live longer than a helper thread from the test's own
// thread. The signal is not inherited by the child's own children (`sh -c '... &'`), but it
// survives exec, so `sh -c '...; exec prog'` and `unshare ... prog` keep it; it is cleared only
// when a set-user-ID or file-capability program is executed.
//
// The constructor returns once the program has been executed (pid() is that program's pid from
// then on, and /proc/PID/comm names it); pid() is -1 when it could not be started.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv, const std::string& output_dir);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `sig`; OK if the process already exited.
  void Signal(int sig);
  // Waits up to `timeout` for exit; returns the exit code (128+signal) or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  std::string out_path_;
  std::string err_path_;
};

// Polls `predicate` every few milliseconds until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout);

// The inode number of `pid`'s mount namespace (/proc/PID/ns/mnt); 0 when the process is gone.
ino_t MountNamespaceOf(pid_t pid);

// A holder as in the seed incident: `sh -c 'SCRIPT; exec sleep 1000'` under `unshare --mount
// --propagation PROPAGATION` ("private", "slave", ...), its output in `output_dir`. Returns once
// it sleeps in a mount namespace other than ours (so the namespace and what SCRIPT set up
// exist), or an error after `bound` (the process is killed then). Bounds: 10 s on a host, 30 s
// in an emulated guest VM.
absl::StatusOr<std::unique_ptr<ChildProcess>> StartNamespaceHolder(const std::string& propagation,
                                                                   const std::string& script,
                                                                   const std::string& output_dir,
                                                                   std::chrono::milliseconds bound);

// SIGKILLs `holder` and reaps it; false when it has not exited within `bound`.
bool KillAndWait(ChildProcess& holder, std::chrono::milliseconds bound);

std::string ReadFileOrEmpty(const std::string& path);

// /sys/block/loopN/loop/<attribute> ("backing_file", "autoclear", ...) of the loop device
// `device` (/dev/loopN), without the trailing newline; "" when the device is not attached.
std::string LoopAttribute(const std::string& device, const std::string& attribute);

// Loop devices whose backing file lies under `dir` (from /sys/block/loop*/loop/backing_file).
std::vector<std::string> LoopDevicesBackedUnder(const std::string& dir);

// The kernel's disk sequence number of the loop device `device` while it is attached, "" when it
// is not: new with every attach, so with the device it names one attachment, whatever its
// backing path reads as now (a FUSE file whose daemon died reads as "/NAME (deleted)").
std::string LoopAttachment(const std::string& device);

// Cleanup only: detaches `device` if, and only if, it is still the attachment `diskseq` names
// (checked on an open descriptor right before the detach). True when it is no longer attached
// as such afterwards.
bool DetachLoopAttachment(const std::string& device, const std::string& diskseq);

// Mount points (in this namespace) under `dir`.
std::vector<std::string> MountsUnder(const std::string& dir);

// Cleanup only, never a substitute for a test's own checks. Detaches the loop device `device`
// if, and only if, it is still attached to `backing_file`: the sysfs backing_file must name it
// and the inode the kernel holds (read on a descriptor kept open across check and detach) must
// be that file's, so a device number reused for someone else's file is never detached. Returns
// true when the device is no longer attached to `backing_file` afterwards; false when it stays
// attached because another process still has it open (the kernel then only sets autoclear: a
// lazy detach that happens when the last opener closes).
bool DetachLoopDeviceBackedBy(const std::string& device, const std::string& backing_file);

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_SUPPORT_TEST_SUPPORT_H_
