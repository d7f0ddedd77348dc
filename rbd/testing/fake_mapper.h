// A fake Mapper: images to /dev/fakeN in memory, logging its actions.
#ifndef RBDCSI_RBD_TESTING_FAKE_MAPPER_H_
#define RBDCSI_RBD_TESTING_FAKE_MAPPER_H_

#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/testing/fake_actions.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// Maps images to /dev/fakeN with major 7. Not thread-safe (the node calls a mapper under the
// image's lock); `on_mapped` learns each new device node (e.g. FakeMounter::DeviceAdder()).
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
    last_options_ = options;
    if (on_next_map_) std::exchange(on_next_map_, nullptr)();
    RETURN_IF_ERROR(script_->Next("map"));
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
    return mapped_;
  }

  std::string WhyGone(const MappedDevice& /*device*/) override { return why_gone_; }
  void set_why_gone(std::string why) { why_gone_ = std::move(why); }

  absl::Status RefreshCapacity(const MappedDevice& device) override {
    AppendAction(log_, absl::StrCat("refresh ", device.path));
    return script_->Next("refresh");
  }

  void AddImage(const std::string& spec) { images_.insert(spec); }
  // Runs `hook` inside the next Map, before it maps (e.g. to hold a map while another call
  // races it). The hook runs on the mapping thread; later Maps do not run it.
  void OnNextMap(std::function<void()> hook) { on_next_map_ = std::move(hook); }
  // The next Map maps the image and then reports `status`, like an rbd CLI failing after the
  // kernel mapped the image.
  void FailAfterMapping(absl::Status status) { fail_after_mapping_ = std::move(status); }
  std::vector<MappedDevice>& mapped() { return mapped_; }
  const MapOptions& last_options() const { return last_options_; }

 private:
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
