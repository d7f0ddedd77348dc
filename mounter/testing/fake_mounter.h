// Fakes of mounter/: a mount table and filesystems in memory, each logging its actions.
#ifndef RBDCSI_MOUNTER_TESTING_FAKE_MOUNTER_H_
#define RBDCSI_MOUNTER_TESTING_FAKE_MOUNTER_H_

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/testing/fake_actions.h"
#include "mounter/filesystem.h"
#include "mounter/mounter.h"

namespace rbdcsi {

// A mount table in memory. Thread-safe, as Mounter promises: every call holds one mutex, and
// logs to the shared ActionLog through AppendAction().
class FakeMounter : public Mounter {
 public:
  FakeMounter(ActionLog* log, FailureScript* script) : log_(log), script_(script) {}

  // Registers a device node path with its numbers so Mount can record major:minor.
  void AddDevice(const std::string& path, unsigned major, unsigned minor) {
    std::lock_guard<std::mutex> lock(mu_);
    devices_[path] = {major, minor};
  }

  // AddDevice() as a callback, for fakes of the layers that make device nodes (FakeMapper).
  std::function<void(const std::string&, unsigned, unsigned)> DeviceAdder() {
    return [this](const std::string& path, unsigned major, unsigned minor) {
      AddDevice(path, major, minor);
    };
  }

  absl::Status Mount(const std::string& source, const std::string& target,
                     const std::string& fstype, const std::string& options) override {
    std::lock_guard<std::mutex> lock(mu_);
    AppendAction(log_, absl::StrCat("mount ", source, " ", target, " ", fstype, " ", options));
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
    std::lock_guard<std::mutex> lock(mu_);
    AppendAction(log_, absl::StrCat("bind ", source, " ", target, read_only ? " ro" : " rw"));
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
    std::lock_guard<std::mutex> lock(mu_);
    AppendAction(log_, absl::StrCat("unmount ", target));
    RETURN_IF_ERROR(script_->Next("unmount"));
    for (auto it = table_.rbegin(); it != table_.rend(); ++it) {
      if (it->mount_point == target) {
        table_.erase(std::next(it).base());
        return absl::OkStatus();
      }
    }
    return absl::NotFoundError(absl::StrCat(target, " is not mounted"));
  }

  absl::StatusOr<std::vector<MountInfo>> List() override {
    std::lock_guard<std::mutex> lock(mu_);
    return table_;
  }

  // The table itself, for a test to inspect or change between calls (not while calls run).
  std::vector<MountInfo>& table() { return table_; }

 private:
  std::mutex mu_;
  ActionLog* log_;
  FailureScript* script_;
  std::vector<MountInfo> table_;
  std::map<std::string, std::pair<unsigned, unsigned>> devices_;
  int next_id_ = 100;
};

// Filesystems by device path in memory; Format records, Grow only logs. Thread-safe: fs_ is
// guarded by one mutex.
class FakeFilesystems : public Filesystems {
 public:
  FakeFilesystems(ActionLog* log, FailureScript* script) : log_(log), script_(script) {}

  absl::StatusOr<std::string> Probe(const std::string& device) override {
    RETURN_IF_ERROR(script_->Next("probe"));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = fs_.find(device);
    return it == fs_.end() ? std::string() : it->second;
  }
  absl::Status Format(const std::string& device, const std::string& fstype) override {
    AppendAction(log_, absl::StrCat("format ", device, " ", fstype));
    RETURN_IF_ERROR(script_->Next("format"));
    std::lock_guard<std::mutex> lock(mu_);
    fs_[device] = fstype;
    return absl::OkStatus();
  }
  absl::Status Grow(const std::string& device, const std::string& mount_point,
                    const std::string& fstype) override {
    AppendAction(log_, absl::StrCat("grow ", device, " ", mount_point, " ", fstype));
    return script_->Next("grow");
  }
  // The filesystems themselves, for a test to inspect or change between calls.
  std::map<std::string, std::string>& fs() { return fs_; }

 private:
  std::mutex mu_;
  ActionLog* log_;
  FailureScript* script_;
  std::map<std::string, std::string> fs_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_MOUNTER_TESTING_FAKE_MOUNTER_H_
