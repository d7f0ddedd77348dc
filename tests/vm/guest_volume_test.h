// The fixture of the tests that run inside the guest VM (tests/vm/vm-run) under
// `rbdcsi-test-cluster run`: the real kernel's rbd and nbd drivers and a real single-node
// cluster, driven through `rbdcsi serve`'s socket as kubelet does. The cluster's variables
// (RBDCSI_CEPH_*) come from the cluster's env file.
//
// Every `rbd` call costs 0.6-3 s in the emulated guest, so the fixture spends them carefully:
// one image per test suite (made before its first case, left to the throwaway cluster; later
// cases find its filesystem and skip mkfs), and the kernel's own records (sysfs, the daemon's /proc
// entry) rather than `rbd device list` to find a mapping. Each case starts its own plugin.
#ifndef RBDCSI_TESTS_VM_GUEST_VOLUME_TEST_H_
#define RBDCSI_TESTS_VM_GUEST_VOLUME_TEST_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {

// How long a holder may take to start in the emulated guest.
inline constexpr std::chrono::seconds kGuestHolderBound{30};

// The value of the environment variable `name`, "" when unset.
std::string Env(const char* name);

// Runs a program to its end (60 s at most), its output kept in `dir`, and returns its stdout;
// EXPECTs exit code `want`.
std::string RunToEnd(const std::vector<std::string>& argv, const std::string& dir, int want = 0);

class GuestVolumeTest : public ::testing::Test {
 protected:
  // The suite's image: vm-SUITE, 64 MiB, in pool rbd.
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
  void TearDown() override;

  // Flags for `rbdcsi serve` on this node: the node service alone, as the node DaemonSet runs it.
  std::vector<std::string> PluginFlags(const std::vector<std::string>& extra = {}) const;
  // Stops this case's plugin and starts another on the same directories with `extra` flags.
  void RestartPlugin(const std::vector<std::string>& extra = {});

  // `rbd -c CONF ARGS...`, exit code 0 EXPECTed.
  static std::string Rbd(std::vector<std::string> args);
  // `rbd device list --format json` for this mapper's devices, whitespace stripped.
  std::string DeviceList() const;
  // The device that maps the suite's image, "" when none. krbd: from /sys/bus/rbd/devices; nbd:
  // the /dev/nbdN whose daemon (/sys/block/nbdN/pid) is a live rbd-nbd (what `rbd device list
  // -t nbd` reports, without an rbd call; nothing else in the guest maps through nbd).
  std::string MappedDevice() const;

  const std::string& image() const { return *image_; }
  std::string VolumeId() const { return "0001-vm-" + image(); }
  std::string staging() const { return dir_ / "kubelet/plugins/globalmount"; }
  std::string target() const { return dir_ / "kubelet/pods/pod1/volume"; }

  grpc::Status Stage() { return StageOn(*plugin_, staging(), mapper_); }
  grpc::Status StageOn(Plugin& plugin, const std::string& staging_path, const std::string& mapper);
  grpc::Status Unstage() { return UnstageOn(*plugin_, staging()); }
  grpc::Status UnstageOn(Plugin& plugin, const std::string& staging_path);
  grpc::Status Publish();
  grpc::Status Unpublish();
  csi::v1::NodeGetVolumeStatsResponse Stats(const std::string& path);

  // A holder in a new mount namespace (StartNamespaceHolder), killed by TearDown at the latest.
  void StartHolder(const std::string& propagation, const std::string& script);
  void KillHolder();

  // The cases both mappers run.
  void Lifecycle();
  void SeedIncident();
  void NamespacedLifecycle();

  std::string mapper_ = "krbd";
  bool block_ = false;  // access type block (no filesystem) rather than an ext4 mount
  std::string rados_namespace_;  // the image's RADOS namespace; "": the pool's default
  TempDir dir_{"vm-volume"};
  std::unique_ptr<Plugin> plugin_;
  std::unique_ptr<ChildProcess> holder_;

 private:
  csi::v1::VolumeCapability Capability() const;

  static std::string* image_;
  static TempDir* suite_dir_;  // the output of the suite's rbd calls
};

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_VM_GUEST_VOLUME_TEST_H_
