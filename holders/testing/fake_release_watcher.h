// Scripted ReleaseWatchers for busy-handler tests: no processes, no wall clock. Each wait takes
// the next scripted answer: an event (the holder let go: true at once) or none (the budget runs
// out: the fake clock advances by the whole budget, false). Thread-safe.
#ifndef RBDCSI_HOLDERS_TESTING_FAKE_RELEASE_WATCHER_H_
#define RBDCSI_HOLDERS_TESTING_FAKE_RELEASE_WATCHER_H_

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "holders/release_waiter.h"

namespace rbdcsi {

class FakeReleaseWatchers {
 public:
  // `clock` (advanced on timeouts) must outlive every watcher made.
  explicit FakeReleaseWatchers(Clock* clock) : clock_(clock) {}

  // The next wait reports `event` after `before` ran (e.g. to change the fake /proc as the
  // holder's exit would); nullopt: it times out.
  void ScriptWait(std::optional<std::string> event, std::function<void()> before = nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back({std::move(event), std::move(before)});
  }

  ReleaseWatcherFactory Factory() {
    return [this] { return std::unique_ptr<ReleaseWatcher>(std::make_unique<Watcher>(this)); };
  }

  int waits() {
    std::lock_guard<std::mutex> lock(mu_);
    return waits_;
  }
  // Pids of every holder watched so far.
  std::vector<pid_t> watched() {
    std::lock_guard<std::mutex> lock(mu_);
    return watched_;
  }

 private:
  struct Answer {
    std::optional<std::string> event;
    std::function<void()> before;
  };

  class Watcher : public ReleaseWatcher {
   public:
    explicit Watcher(FakeReleaseWatchers* owner) : owner_(owner) {}
    absl::Status Watch(const HolderReport& report) override {
      std::lock_guard<std::mutex> lock(owner_->mu_);
      for (const Holder& h : report.holders) {
        if (h.pid != 0) owner_->watched_.push_back(h.pid);
      }
      return absl::OkStatus();
    }
    absl::StatusOr<bool> WaitForChange(std::chrono::milliseconds budget) override {
      Answer answer;
      {
        std::lock_guard<std::mutex> lock(owner_->mu_);
        ++owner_->waits_;
        if (!owner_->script_.empty()) {
          answer = std::move(owner_->script_.front());
          owner_->script_.pop_front();
        }
      }
      if (answer.before) answer.before();
      if (!answer.event) {
        owner_->clock_->SleepFor(budget);
        return false;
      }
      last_event_ = *answer.event;
      return true;
    }
    const std::string& last_event() const override { return last_event_; }

   private:
    FakeReleaseWatchers* owner_;
    std::string last_event_;
  };

  Clock* clock_;
  std::mutex mu_;
  std::deque<Answer> script_;
  int waits_ = 0;
  std::vector<pid_t> watched_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_HOLDERS_TESTING_FAKE_RELEASE_WATCHER_H_
