// The KrbdMapper fixture of krbd_mapper_test.cc and krbd_list_test.cc: a scripted rbd CLI, a
// fake sysfs under a temporary directory, and a hook that records the key file rbd was given.
#ifndef RBDCSI_TESTS_RBD_KRBD_FIXTURE_H_
#define RBDCSI_TESTS_RBD_KRBD_FIXTURE_H_

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rbd/krbd_mapper.h"
#include "tests/support/scripted_command_runner.h"
#include "tests/support/test_support.h"

namespace rbdcsi {

constexpr char kKey[] = "AQBVdW9mAAAAABAAbG9uZ3NlY3JldGtleWZvcnRlc3RzPT0=";
constexpr char kMonitors[] = "10.0.0.1:6789,10.0.0.2:6789";

inline std::string Testdata(const std::string& name) {
  return ReadFileOrEmpty(std::string(RBDCSI_TESTDATA_DIR) + "/rbd/" + name);
}

// What a hook saw of the key file while rbd ran.
struct KeyFileSeen {
  std::string path;
  bool exists = false;
  mode_t file_mode = 0;
  mode_t dir_mode = 0;
  std::string content;
};

class KrbdMapperTest : public ::testing::Test {
 protected:
  KrbdMapperTest() {
    KrbdMapperOptions options;
    options.key_dir = dir_.path() + "/run/keys";  // missing: the mapper creates it
    options.stat_device = [this](const std::string& path) -> absl::StatusOr<DeviceNumber> {
      auto it = devices_.find(path);
      if (it == devices_.end()) return absl::NotFoundError(path + " does not exist");
      return it->second;
    };
    options.udev_running = [this] { return udev_; };
    options.sysfs_devices = dir_.path() + "/sys/bus/rbd/devices";  // absent unless a test adds it
    mapper_ = std::make_unique<KrbdMapper>(&runner_, options);
  }

  // Adds /sys/bus/rbd/devices/ID with the given attributes, as the kernel shows them.
  void AddSysfsDevice(const std::string& id, const std::map<std::string, std::string>& files) {
    const std::string dir = dir_.path() + "/sys/bus/rbd/devices/" + id;
    ASSERT_THAT(MakeDirs(dir, 0755), IsOk());
    for (const auto& [name, content] : files) {
      std::ofstream(dir + "/" + name) << content << "\n";
    }
  }

  MapOptions Options(bool read_only = false) {
    MapOptions options;
    options.image = {"replicapool", "csi-vol-1"};
    options.read_only = read_only;
    options.monitors = kMonitors;
    options.user = "csi-rbd-node";
    options.key = kKey;
    return options;
  }

  // A hook recording the key file named after --keyfile.
  ScriptedCommandRunner::Hook RecordKeyFile() {
    return [this](const std::vector<std::string>& argv) {
      for (size_t i = 0; i + 1 < argv.size(); ++i) {
        if (argv[i] != "--keyfile") continue;
        seen_.path = argv[i + 1];
        struct stat st;
        seen_.exists = stat(seen_.path.c_str(), &st) == 0;
        seen_.file_mode = st.st_mode & 07777;
        const std::string dir = seen_.path.substr(0, seen_.path.rfind('/'));
        if (stat(dir.c_str(), &st) == 0) seen_.dir_mode = st.st_mode & 07777;
        seen_.content = ReadFileOrEmpty(seen_.path);
      }
    };
  }

  void ExpectKeyNowhereInArgv() {
    for (const auto& argv : runner_.calls()) {
      for (const std::string& arg : argv)
        EXPECT_THAT(arg, ::testing::Not(::testing::HasSubstr(kKey)));
    }
  }

  void ExpectKeyFileGone() {
    ASSERT_FALSE(seen_.path.empty());
    EXPECT_NE(access(seen_.path.c_str(), F_OK), 0) << seen_.path;
    const std::string dir = seen_.path.substr(0, seen_.path.rfind('/'));
    EXPECT_NE(access(dir.c_str(), F_OK), 0) << dir;
  }

  TempDir dir_{"krbd"};
  ScriptedCommandRunner runner_;
  std::map<std::string, DeviceNumber> devices_ = {{"/dev/rbd0", {252, 0}},
                                                  {"/dev/rbd1", {252, 16}}};
  KeyFileSeen seen_;
  bool udev_ = true;
  std::unique_ptr<KrbdMapper> mapper_;
};

// A head image of the default namespace as a 6.1 kernel shows it (single-major numbering).
inline std::map<std::string, std::string> SysfsImage(const std::string& name,
                                                     const std::string& minor) {
  return {{"pool", "replicapool"}, {"pool_id", "2"},   {"pool_ns", ""},
          {"name", name},          {"image_id", "1f"}, {"current_snap", "-"},
          {"major", "252"},        {"minor", minor},   {"client_addr", "127.0.0.1:0/4102"}};
}

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_RBD_KRBD_FIXTURE_H_
