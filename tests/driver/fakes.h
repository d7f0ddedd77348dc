// Stateful fakes of the node's OS boundaries, each keeping an action log.
#ifndef RBDCSI_TESTS_DRIVER_FAKES_H_
#define RBDCSI_TESTS_DRIVER_FAKES_H_

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "driver/busy_handler.h"
#include "mounter/filesystem.h"
#include "mounter/mounter.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// One shared action log, so tests can assert the order across fakes.
using ActionLog = std::vector<std::string>;

// Errors queued by action name ("mount", "unmount", "map", "unmap", "format", ...): each call
// of that action pops one and returns it instead of acting.
class FailureScript {
 public:
  void Fail(const std::string& action, absl::Status status, int times = 1) {
    for (int i = 0; i < times; ++i) queued_[action].push_back(status);
  }
  absl::Status Next(const std::string& action) {
    auto it = queued_.find(action);
    if (it == queued_.end() || it->second.empty()) return absl::OkStatus();
    absl::Status st = it->second.front();
    it->second.pop_front();
    return st;
  }

 private:
  std::map<std::string, std::deque<absl::Status>> queued_;
};

class FakeMounter : public Mounter {
 public:
  FakeMounter(ActionLog* log, FailureScript* script) : log_(log), script_(script) {}

  // Registers a device node path with its numbers so Mount can record major:minor.
  void AddDevice(const std::string& path, unsigned major, unsigned minor) {
    devices_[path] = {major, minor};
  }

  absl::Status Mount(const std::string& source, const std::string& target,
                     const std::string& fstype, const std::string& options) override {
    log_->push_back(absl::StrCat("mount ", source, " ", target, " ", fstype, " ", options));
    RETURN_IF_ERROR(script_->Next("mount"));
    MountInfo m;
    m.mount_id = next_id_++;
    auto dev = devices_.find(source);
    if (dev != devices_.end()) {
      m.major = dev->second.first;
      m.minor = dev->second.second;
    }
    m.mount_point = target;
    m.source = source;
    m.fs_type = fstype;
    m.mount_options =
        options.find("ro") == 0 || options.find(",ro") != std::string::npos ? "ro" : "rw";
    table_.push_back(m);
    return absl::OkStatus();
  }

  absl::Status BindMount(const std::string& source, const std::string& target,
                         bool read_only) override {
    log_->push_back(absl::StrCat("bind ", source, " ", target, read_only ? " ro" : " rw"));
    RETURN_IF_ERROR(script_->Next("bind"));
    MountInfo m;
    m.mount_id = next_id_++;
    for (const MountInfo& existing : table_) {
      if (existing.mount_point == source) {
        m.major = existing.major;
        m.minor = existing.minor;
      }
    }
    m.mount_point = target;
    m.source = source;
    m.mount_options = read_only ? "ro" : "rw";
    table_.push_back(m);
    return absl::OkStatus();
  }

  absl::Status Unmount(const std::string& target) override {
    log_->push_back(absl::StrCat("unmount ", target));
    RETURN_IF_ERROR(script_->Next("unmount"));
    for (auto it = table_.rbegin(); it != table_.rend(); ++it) {
      if (it->mount_point == target) {
        table_.erase(std::next(it).base());
        return absl::OkStatus();
      }
    }
    return absl::NotFoundError(absl::StrCat(target, " is not mounted"));
  }

  absl::StatusOr<std::vector<MountInfo>> List() override { return table_; }

  std::vector<MountInfo>& table() { return table_; }

 private:
  ActionLog* log_;
  FailureScript* script_;
  std::vector<MountInfo> table_;
  std::map<std::string, std::pair<unsigned, unsigned>> devices_;
  int next_id_ = 100;
};

// Maps images to /dev/fakeN with major 7.
class FakeMapper : public Mapper {
 public:
  FakeMapper(std::string name, ActionLog* log, FailureScript* script, FakeMounter* mounter)
      : name_(std::move(name)), log_(log), script_(script), mounter_(mounter) {}

  std::string_view Name() const override { return name_; }
  MapperTraits Traits() const override { return traits_; }
  void set_traits(MapperTraits traits) { traits_ = std::move(traits); }

  absl::StatusOr<MappedDevice> Map(const MapOptions& options) override {
    log_->push_back(absl::StrCat("map ", options.image.ToString(), options.read_only ? " ro" : ""));
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
    mounter_->AddDevice(d.path, d.major, d.minor);
    if (!fail_after_mapping_.ok()) {
      absl::Status st = fail_after_mapping_;
      fail_after_mapping_ = absl::OkStatus();
      return st;
    }
    return d;
  }

  absl::Status Unmap(const MappedDevice& device) override {
    log_->push_back(absl::StrCat("unmap ", device.path));
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

  absl::Status RefreshCapacity(const MappedDevice& device) override {
    log_->push_back(absl::StrCat("refresh ", device.path));
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
  FakeMounter* mounter_;
  std::set<std::string> images_;
  std::vector<MappedDevice> mapped_;
  MapOptions last_options_;
  absl::Status fail_after_mapping_;
  MapperTraits traits_;
  std::function<void()> on_next_map_;
};

class FakeFilesystems : public Filesystems {
 public:
  FakeFilesystems(ActionLog* log, FailureScript* script) : log_(log), script_(script) {}

  absl::StatusOr<std::string> Probe(const std::string& device) override {
    RETURN_IF_ERROR(script_->Next("probe"));
    auto it = fs_.find(device);
    return it == fs_.end() ? std::string() : it->second;
  }
  absl::Status Format(const std::string& device, const std::string& fstype) override {
    log_->push_back(absl::StrCat("format ", device, " ", fstype));
    RETURN_IF_ERROR(script_->Next("format"));
    fs_[device] = fstype;
    return absl::OkStatus();
  }
  absl::Status Grow(const std::string& device, const std::string& mount_point,
                    const std::string& fstype) override {
    log_->push_back(absl::StrCat("grow ", device, " ", mount_point, " ", fstype));
    return script_->Next("grow");
  }
  std::map<std::string, std::string>& fs() { return fs_; }

 private:
  ActionLog* log_;
  FailureScript* script_;
  std::map<std::string, std::string> fs_;
};

// Runs a test-provided reaction and logs each call.
class ScriptedBusyHandler : public BusyHandler {
 public:
  using Reaction = std::function<absl::Status(const VolumeRecord&, BusyStage, int)>;
  explicit ScriptedBusyHandler(ActionLog* log) : log_(log) {}
  void set_reaction(Reaction r) { reaction_ = std::move(r); }

  absl::Status OnBusy(const VolumeRecord& record, BusyStage stage, const absl::Status& busy,
                      int attempt, std::chrono::steady_clock::time_point) override {
    log_->push_back(absl::StrCat("busy ", stage == BusyStage::kUnmount ? "unmount" : "unmap",
                                 " attempt ", attempt));
    if (reaction_) return reaction_(record, stage, attempt);
    return absl::FailedPreconditionError(absl::StrCat("held: ", busy.message()));
  }

 private:
  ActionLog* log_;
  Reaction reaction_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_DRIVER_FAKES_H_
