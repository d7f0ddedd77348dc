// An in-memory LoopDevices with an action log, for unit tests of the loop mapper.
#ifndef RBDCSI_TESTS_RBD_FAKE_LOOP_DEVICES_H_
#define RBDCSI_TESTS_RBD_FAKE_LOOP_DEVICES_H_

#include <cerrno>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "rbd/loop_device.h"

namespace rbdcsi {

class FakeLoopDevices : public LoopDevices {
 public:
  absl::StatusOr<std::string> Attach(const std::string& backing_file, bool read_only) override {
    log.push_back(absl::StrCat("attach ", backing_file, read_only ? " ro" : " rw"));
    if (!attach_error.ok()) return attach_error;
    const unsigned minor = next_minor++;
    LoopInfo info;
    info.device = absl::StrCat("/dev/loop", minor);
    info.backing_file = backing_file;
    info.major = 7;
    info.minor = minor;
    info.read_only = read_only;
    info.diskseq = ++diskseq;
    attached[info.device] = info;
    return info.device;
  }

  absl::Status Detach(const std::string& dev, const std::string& expected_backing_file) override {
    log.push_back(absl::StrCat("detach ", dev, " ", expected_backing_file));
    auto it = attached.find(dev);
    if (it == attached.end()) return absl::OkStatus();
    if (!expected_backing_file.empty() && it->second.backing_file != expected_backing_file) {
      return absl::OkStatus();
    }
    if (busy.count(dev) != 0) return ErrnoToStatus(EBUSY, absl::StrCat("detaching ", dev));
    attached.erase(it);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<LoopInfo>> List() override {
    return ListWhere([](std::string_view) { return true; });
  }

  absl::StatusOr<std::vector<LoopInfo>> ListWhere(
      const std::function<bool(std::string_view backing_file)>& want) override {
    if (!list_error.ok()) return list_error;
    std::vector<LoopInfo> out;
    for (const auto& [dev, info] : attached) {
      if (hidden.count(dev) == 0 && want(info.backing_file)) out.push_back(info);
    }
    return out;
  }

  absl::StatusOr<LoopInfo> Get(const std::string& dev) override {
    if (!list_error.ok()) return list_error;
    auto it = attached.find(dev);
    if (it == attached.end() || hidden.count(dev) != 0) {
      return absl::NotFoundError(absl::StrCat(dev, " is not attached"));
    }
    return it->second;
  }

  absl::Status SetCapacity(const std::string& dev) override {
    log.push_back(absl::StrCat("set-capacity ", dev));
    if (attached.count(dev) == 0) return ErrnoToStatus(ENXIO, dev);
    return absl::OkStatus();
  }

  absl::StatusOr<bool> IsFree(const std::string& dev) override { return busy.count(dev) == 0; }

  // Adds a device attached by someone else.
  void AddForeign(const std::string& dev, const std::string& backing_file, unsigned minor) {
    LoopInfo info;
    info.device = dev;
    info.backing_file = backing_file;
    info.major = 7;
    info.minor = minor;
    attached[dev] = info;
  }

  std::map<std::string, LoopInfo> attached;
  uint64_t diskseq = 0;          // the last attach's
  std::set<std::string> busy;    // devices a holder keeps open
  std::set<std::string> hidden;  // attached but missing from List()
  absl::Status attach_error;
  absl::Status list_error;
  std::vector<std::string> log;
  unsigned next_minor = 0;
};

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_RBD_FAKE_LOOP_DEVICES_H_
