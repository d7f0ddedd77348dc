// What the stateful fakes share: one action log (so tests can assert the order of calls across
// fakes) and a script of injected failures.
#ifndef RBDCSI_BASE_TESTING_FAKE_ACTIONS_H_
#define RBDCSI_BASE_TESTING_FAKE_ACTIONS_H_

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace rbdcsi {

// One shared action log, so tests can assert the order across fakes. Fakes append with
// AppendAction(); tests read it once the calls under test have returned.
using ActionLog = std::vector<std::string>;

// Appends `action` to `log`. Thread-safe: all appends to all logs are serialized, so fakes of
// thread-safe interfaces may log from many threads at once.
inline void AppendAction(ActionLog* log, std::string action) {
  static std::mutex* const mu = new std::mutex;
  std::lock_guard<std::mutex> lock(*mu);
  log->push_back(std::move(action));
}

// Errors queued by action name ("mount", "unmount", "map", "unmap", "format", ...): each call
// of that action pops one and returns it instead of acting. Thread-safe.
class FailureScript {
 public:
  void Fail(const std::string& action, absl::Status status, int times = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < times; ++i) queued_[action].push_back(status);
  }
  absl::Status Next(const std::string& action) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = queued_.find(action);
    if (it == queued_.end() || it->second.empty()) return absl::OkStatus();
    absl::Status st = it->second.front();
    it->second.pop_front();
    return st;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::deque<absl::Status>> queued_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_TESTING_FAKE_ACTIONS_H_
