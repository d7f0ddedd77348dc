// A fake Mapper: images to /dev/fakeN in memory, logging its actions.
#ifndef RBDCSI_RBD_TESTING_FAKE_MAPPER_H_
#define RBDCSI_RBD_TESTING_FAKE_MAPPER_H_

#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/testing/fake_actions.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// Maps images to /dev/fakeN with major 7. Thread-safe, as Mapper promises: every call holds one
// mutex, except the OnNextMap() hook, which runs without it. `on_mapped` learns each new device
// node (e.g. FakeMounter::DeviceAdder()), under that mutex.
class FakeMapper : public Mapper {
 public:
  using DeviceCallback = std::function<void(const std::string&, unsigned, unsigned)>;
  FakeMapper(std::string name, ActionLog* log, FailureScript* script, DeviceCallback on_mapped)
      : name_(std::move(name)), log_(log), script_(script), on_mapped_(std::move(on_mapped)) {}

  std::string_view Name() const override { return name_; }
  MapperTraits Traits() const override { return traits_; }
  void set_traits(MapperTraits traits) { traits_ = std::move(traits); }

  absl::StatusOr<MappedDevice> Map(const MapOptions& options) override {
    AppendAction(log_,
                 absl::StrCat("map ", options.image.ToString(), options.read_only ? " ro" : ""));
    std::function<void()> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_options_ = options;
      hook = std::exchange(on_next_map_, nullptr);
    }
    if (hook) hook();
    RETURN_IF_ERROR(script_->Next("map"));
    std::lock_guard<std::mutex> lock(mu_);
    if (images_.count(options.image.ToString()) == 0) {
      return absl::NotFoundError(absl::StrCat("image ", options.image.ToString(), " not found"));
    }
    MappedDevice d;
    d.minor = 0;  // the lowest free number, as the kernel hands out loop and rbd devices
    for (bool taken = true; taken;) {
      taken = false;
      for (const MappedDevice& m : mapped_) taken |= m.minor == d.minor;
      if (taken) ++d.minor;
    }
    d.major = 7;
    d.path = absl::StrCat("/dev/fake", d.minor);
    d.image = options.image;
    mapped_.push_back(d);
    if (on_mapped_) on_mapped_(d.path, d.major, d.minor);
    if (!fail_after_mapping_.ok()) {
      absl::Status st = fail_after_mapping_;
      fail_after_mapping_ = absl::OkStatus();
      return st;
    }
    return d;
  }

  absl::Status Unmap(const MappedDevice& device) override {
    AppendAction(log_, absl::StrCat("unmap ", device.path));
    RETURN_IF_ERROR(script_->Next("unmap"));
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = mapped_.begin(); it != mapped_.end(); ++it) {
      if (it->path == device.path) {
        mapped_.erase(it);
        return absl::OkStatus();
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<MappedDevice>> List() override {
    RETURN_IF_ERROR(script_->Next("list"));
    std::lock_guard<std::mutex> lock(mu_);
    return mapped_;
  }

  std::string WhyGone(const MappedDevice& /*device*/) override {
    std::lock_guard<std::mutex> lock(mu_);
    return why_gone_;
  }
  void set_why_gone(std::string why) {
    std::lock_guard<std::mutex> lock(mu_);
    why_gone_ = std::move(why);
  }

  absl::Status RefreshCapacity(const MappedDevice& device) override {
    AppendAction(log_, absl::StrCat("refresh ", device.path));
    return script_->Next("refresh");
  }

  void AddImage(const std::string& spec) {
    std::lock_guard<std::mutex> lock(mu_);
    images_.insert(spec);
  }
  // Runs `hook` inside the next Map, before it maps (e.g. to hold a map while another call
  // races it). The hook runs on the mapping thread; later Maps do not run it.
  void OnNextMap(std::function<void()> hook) {
    std::lock_guard<std::mutex> lock(mu_);
    on_next_map_ = std::move(hook);
  }
  // The next Map maps the image and then reports `status`, like an rbd CLI failing after the
  // kernel mapped the image.
  void FailAfterMapping(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_after_mapping_ = std::move(status);
  }
  // The mappings themselves, for a test to inspect or change between calls (not while calls run).
  std::vector<MappedDevice>& mapped() { return mapped_; }
  const MapOptions& last_options() const { return last_options_; }

 private:
  std::mutex mu_;
  std::string name_;
  ActionLog* log_;
  FailureScript* script_;
  DeviceCallback on_mapped_;
  std::set<std::string> images_;
  std::vector<MappedDevice> mapped_;
  MapOptions last_options_;
  absl::Status fail_after_mapping_;
  MapperTraits traits_;
  std::function<void()> on_next_map_;
  std::string why_gone_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_TESTING_FAKE_MAPPER_H_
