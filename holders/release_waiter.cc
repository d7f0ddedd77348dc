#include "holders/release_waiter.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

absl::Status ReleaseWaiter::Watch(const HolderReport& report) {
  for (const Holder& h : report.holders) {
    if (h.pid == 0) continue;
    RETURN_IF_ERROR(WatchProcess(h.pid));
    if (h.kind == HolderKind::kMount)
      RETURN_IF_ERROR(WatchNamespace(h.pid, h.tid, h.mount_namespace));
  }
  return absl::OkStatus();
}

absl::Status ReleaseWaiter::WatchProcess(pid_t pid) {
  for (const Entry& e : entries_) {
    if (e.type == Entry::Type::kPidfd && e.pid == pid) return absl::OkStatus();
  }
  UniqueFd fd(PidfdOpen(pid));
  if (!fd.valid()) {
    if (errno == ESRCH) {
      pending_event_ = absl::StrCat("pid ", pid, " exited");
      return absl::OkStatus();
    }
    return Annotate(ErrnoToStatus(errno, absl::StrCat("pidfd_open(", pid, ")")),
                    "cannot watch a holder process");
  }
  entries_.push_back({Entry::Type::kPidfd, pid, 0, std::move(fd)});
  return absl::OkStatus();
}

absl::Status ReleaseWaiter::WatchNamespace(pid_t pid, pid_t tid, uint64_t ns) {
  for (const Entry& e : entries_) {
    if (e.type == Entry::Type::kMountInfo && e.ns == ns) return absl::OkStatus();
  }
  const std::string path = tid != 0 ? absl::StrCat("/proc/", pid, "/task/", tid, "/mountinfo")
                                    : absl::StrCat("/proc/", pid, "/mountinfo");
  // Opening arms the event: poll() reports any change made after this point.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT || errno == ESRCH) {
      pending_event_ = absl::StrCat("pid ", pid, " exited");
      return absl::OkStatus();
    }
    return Annotate(ErrnoToStatus(errno, absl::StrCat("cannot open ", path)),
                    "cannot watch a holder's mount namespace");
  }
  entries_.push_back({Entry::Type::kMountInfo, pid, ns, std::move(fd)});
  return absl::OkStatus();
}

absl::StatusOr<bool> ReleaseWaiter::WaitForChange(std::chrono::milliseconds budget) {
  if (!pending_event_.empty()) {
    last_event_ = std::exchange(pending_event_, "");
    return true;
  }
  if (entries_.empty()) return false;
  std::vector<struct pollfd> fds;
  fds.reserve(entries_.size());
  for (const Entry& e : entries_) {
    fds.push_back(
        {e.fd.get(), static_cast<short>(e.type == Entry::Type::kPidfd ? POLLIN : POLLPRI), 0});
  }
  const auto deadline = std::chrono::steady_clock::now() + budget;
  int ready;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - std::chrono::steady_clock::now());
    const struct timespec timeout = {
        static_cast<time_t>(std::max<int64_t>(0, left.count()) / 1000000000),
        static_cast<long>(std::max<int64_t>(0, left.count()) % 1000000000)};
    ready = ::ppoll(fds.data(), fds.size(), &timeout, nullptr);
    if (ready >= 0) break;
    if (errno != EINTR) return ErrnoToStatus(errno, "poll on holder processes and mount tables");
  }
  if (ready == 0) return false;

  std::vector<pid_t> exited;
  last_event_.clear();
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents == 0) continue;
    const Entry& e = entries_[i];
    if (e.type == Entry::Type::kPidfd) {
      exited.push_back(e.pid);
      if (last_event_.empty()) last_event_ = absl::StrCat("pid ", e.pid, " exited");
    } else if (last_event_.empty()) {
      last_event_ = absl::StrCat("the mount table of mount namespace ", e.ns, " changed");
    }
  }
  // An exited process's descriptors, its mountinfo above all, must not keep its namespace alive.
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const Entry& e) {
                                  return std::find(exited.begin(), exited.end(), e.pid) !=
                                         exited.end();
                                }),
                 entries_.end());
  return true;
}

int ReleaseWaiter::watched_processes() const {
  return static_cast<int>(std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) {
    return e.type == Entry::Type::kPidfd;
  }));
}

int ReleaseWaiter::watched_namespaces() const {
  return static_cast<int>(entries_.size()) - watched_processes();
}

void ReleaseWaiter::Reset() {
  entries_.clear();
  pending_event_.clear();
}

}  // namespace rbdcsi
