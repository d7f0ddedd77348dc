// A fake NamespaceUnmounter that records each call and answers with a scripted status.
#ifndef RBDCSI_HOLDERS_TESTING_FAKE_NS_UNMOUNT_H_
#define RBDCSI_HOLDERS_TESTING_FAKE_NS_UNMOUNT_H_

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "holders/ns_unmount.h"

namespace rbdcsi {

class FakeNamespaceUnmounter : public NamespaceUnmounter {
 public:
  struct Call {
    pid_t pid = 0;
    pid_t tid = 0;
    uint64_t ns_inode = 0;
    int mount_id = 0;
    std::string mount_point;
  };

  // Queues the answer to the next call; calls beyond the queue succeed.
  void Answer(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    answers_.push_back(std::move(status));
  }

  absl::Status Unmount(pid_t pid, pid_t tid, uint64_t ns_inode, int mount_id,
                       const std::string& mount_point) override {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back({pid, tid, ns_inode, mount_id, mount_point});
    if (answers_.empty()) return absl::OkStatus();
    absl::Status status = std::move(answers_.front());
    answers_.pop_front();
    return status;
  }

  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::deque<absl::Status> answers_;
  std::vector<Call> calls_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_HOLDERS_TESTING_FAKE_NS_UNMOUNT_H_
