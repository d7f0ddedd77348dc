// rbd-nbd on the guest's real nbd module (tests/vm/guest_volume_test.h), whose unmap cannot
// refuse: the plugin must refuse for it, and the guest kernel must log no I/O error
// (with_cluster.sh checks dmesg).
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "tests/vm/guest_volume_test.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

class NbdGuestTest : public GuestVolumeTest {
 protected:
  NbdGuestTest() { mapper_ = "nbd"; }
};

TEST_F(NbdGuestTest, LifecycleThroughRbdNbdKeepsTheData) { Lifecycle(); }
TEST_F(NbdGuestTest, SeedIncidentPrivateCopyIsReleasedBeforeRbdNbdUnmaps) { SeedIncident(); }
TEST_F(NbdGuestTest, AVolumeInARadosNamespaceIsMappedOnceAndUnmapped) { NamespacedLifecycle(); }

// rbd-nbd's daemon is a process of its own: it outlives a restart of the plugin, which finds the
// volume healthy again; once the daemon dies, NodeGetVolumeStats reports the volume abnormal,
// naming the dead daemon, and unstage still cleans up. A block volume: nothing is mounted on the
// device, so the dead daemon costs no filesystem I/O errors.
TEST_F(NbdGuestTest, TheDaemonOutlivesAPluginRestartAndItsDeathIsReported) {
  block_ = true;
  grpc::Status st = Stage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Publish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string device = MappedDevice();
  ASSERT_THAT(device, HasSubstr("/dev/nbd"));
  const std::string sys = "/sys/block/" + device.substr(5);
  const pid_t daemon = std::atoi(ReadFileOrEmpty(sys + "/pid").c_str());
  ASSERT_GT(daemon, 0);
  std::string cmdline = ReadFileOrEmpty(absl::StrCat("/proc/", daemon, "/cmdline"));
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  std::cout << "rbd-nbd daemon: " << cmdline << std::endl;

  RestartPlugin();
  EXPECT_EQ(ReadFileOrEmpty(absl::StrCat("/proc/", daemon, "/comm")), "rbd-nbd\n");
  csi::v1::NodeGetVolumeStatsResponse stats = Stats(target());
  EXPECT_FALSE(stats.volume_condition().abnormal()) << stats.volume_condition().message();

  ASSERT_EQ(kill(daemon, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return MappedDevice().empty(); }, std::chrono::seconds(30)));
  stats = Stats(target());
  EXPECT_TRUE(stats.volume_condition().abnormal());
  EXPECT_THAT(stats.volume_condition().message(), HasSubstr("rbd-nbd daemon"));
  std::cout << "dead daemon: " << stats.volume_condition().message() << std::endl;
  std::cout << device << " after the daemon died: pid \"" << ReadFileOrEmpty(sys + "/pid")
            << "\", size " << ReadFileOrEmpty(sys + "/size") << std::flush;

  st = Unpublish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Unstage();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(ReadFileOrEmpty(sys + "/pid"), "");  // the kernel's device is not left connected
}

}  // namespace
}  // namespace rbdcsi
