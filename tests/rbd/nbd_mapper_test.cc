#include "rbd/nbd_mapper.h"

#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rbd/printers.h"
#include "tests/support/scripted_command_runner.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The daemon `rbd device map -t nbd` starts, as /proc/PID/cmdline showed it in the guest VM
// (Debian 12's Ceph 16.2): the options first, then the command and the image.
std::vector<std::string> DaemonArgv() {
  return {"/usr/bin/rbd-nbd",
          "--id",
          "rbdcsi",
          "-m",
          "127.0.0.1:27364",
          "--keyfile",
          "/run/rbdcsi/keys/rbdcsi.key",
          "map",
          "rbd/img2"};
}

class NbdMapperTest : public ::testing::Test {
 protected:
  NbdMapperTest() {
    NbdMapperOptions options;
    options.key_dir = dir_.path() + "/keys";
    options.sysfs_block = dir_.path() + "/sys/block";
    options.proc_dir = dir_.path() + "/proc";
    options.probe_exclusive = [this](const std::string& path) {
      probed_.push_back(path);
      return claimed_ ? BusyError(path + " is mounted or claimed by another device")
                      : absl::OkStatus();
    };
    options.check_unused = [this](const MappedDevice& device, pid_t daemon) {
      checked_.emplace_back(device.path, daemon);
      return holders_.empty() ? absl::OkStatus()
                              : BusyError(device.path + " is in use: " + holders_);
    };
    mapper_ = std::make_unique<NbdMapper>(&runner_, options);
  }

  void SetDaemon(const std::string& nbd, const std::string& pid) {
    ASSERT_THAT(MakeDirs(dir_.path() + "/sys/block/" + nbd, 0755), IsOk());
    std::ofstream(dir_.path() + "/sys/block/" + nbd + "/pid") << pid << "\n";
  }

  // /sys/block/nbdN/dev: "MAJOR:MINOR".
  void SetDevice(const std::string& nbd, const std::string& number) {
    ASSERT_THAT(MakeDirs(dir_.path() + "/sys/block/" + nbd, 0755), IsOk());
    std::ofstream(dir_.path() + "/sys/block/" + nbd + "/dev") << number << "\n";
  }

  void SetProcess(const std::string& pid, const std::string& comm, char state) {
    ASSERT_THAT(MakeDirs(dir_.path() + "/proc/" + pid, 0755), IsOk());
    std::ofstream(dir_.path() + "/proc/" + pid + "/stat")
        << pid << " (" << comm << ") " << state << " 1 " << pid << " " << pid << " 0 -1\n";
  }

  // /proc/PID/cmdline: the arguments, each ended by a NUL.
  void SetCommandLine(const std::string& pid, const std::vector<std::string>& argv) {
    ASSERT_THAT(MakeDirs(dir_.path() + "/proc/" + pid, 0755), IsOk());
    std::ofstream out(dir_.path() + "/proc/" + pid + "/cmdline");
    for (const std::string& arg : argv) out << arg << '\0';
  }

  // How many `rbd device list` the mapper ran.
  int Listings() const {
    int n = 0;
    for (const std::vector<std::string>& argv : runner_.calls()) {
      n += argv.size() > 2 && argv[1] == "device" && argv[2] == "list";
    }
    return n;
  }

  MapOptions Options() {
    MapOptions options;
    options.image = {"rbd", "img2"};
    options.monitors = "127.0.0.1:6789";
    options.user = "rbdcsi";
    options.key = "AQBVdW9mAAAAABAAbG9uZ3NlY3JldGtleWZvcnRlc3RzPT0=";
    return options;
  }

  TempDir dir_{"nbd"};
  ScriptedCommandRunner runner_;
  bool claimed_ = false;
  std::string holders_;
  std::vector<std::string> probed_;
  std::vector<std::pair<std::string, pid_t>> checked_;
  std::unique_ptr<NbdMapper> mapper_;
};

TEST_F(NbdMapperTest, TraitsSayUnmapCannotRefuse) {
  EXPECT_EQ(mapper_->Name(), "nbd");
  EXPECT_FALSE(mapper_->Traits().unmap_refuses_busy);
  EXPECT_TRUE(mapper_->Traits().ceph_images);
}

TEST_F(NbdMapperTest, MapRunsRbdWithTheNbdTypeAndNeverNoudev) {
  runner_.Answer(0, "/dev/nbd0\n", "");
  // The test's stat of /dev/nbd0 may fail on a host without nbd; the argv is what matters here.
  (void)mapper_->Map(Options());
  ASSERT_GE(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("rbd", "device", "map", "rbd/img2", "--id", "rbdcsi",
                                              "-m", "127.0.0.1:6789", "--keyfile", _, "-t", "nbd"));
}

TEST_F(NbdMapperTest, AClaimedDeviceIsRefusedBeforeRbdNbdCanPullIt) {
  claimed_ = true;
  absl::Status st = mapper_->Unmap(MappedDevice{"/dev/nbd0", 43, 0, {}});
  EXPECT_TRUE(IsBusy(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("stays mapped"));
  EXPECT_THAT(probed_, ElementsAre("/dev/nbd0"));
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(NbdMapperTest, HoldersOtherThanTheDaemonAreRefusedAndTheDaemonIsExcluded) {
  SetDaemon("nbd0", "628");
  holders_ = "pid 700 (dd) has it open";
  absl::Status st = mapper_->Unmap(MappedDevice{"/dev/nbd0", 43, 0, {}});
  EXPECT_TRUE(IsBusy(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("pid 700 (dd)"));
  EXPECT_THAT(checked_, ElementsAre(std::make_pair(std::string("/dev/nbd0"), pid_t{628})));
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(NbdMapperTest, AnUnusedDeviceIsUnmappedThroughRbd) {
  runner_.Answer(0, "", "");
  ASSERT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd0", 43, 0, {}}), IsOk());
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("rbd", "device", "unmap", "-t", "nbd", "/dev/nbd0"));
  EXPECT_THAT(checked_, ElementsAre(std::make_pair(std::string("/dev/nbd0"), pid_t{0})));
}

// What `rbd device list -t nbd` reports, read the way it reads it, without running it: every
// /sys/block/nbdN with a running rbd-nbd daemon, and the image that daemon's command line names.
TEST_F(NbdMapperTest, ListReadsSysfsAndTheDaemonsCommandLinesWithoutRunningRbd) {
  SetDaemon("nbd0", "628");
  SetCommandLine("628", DaemonArgv());
  SetDevice("nbd0", "43:0");
  SetDaemon("nbd1", "629");  // an image in a RADOS namespace
  SetCommandLine("629", {"rbd-nbd", "--id", "map", "map", "rbd/ns1/img3", "--read-only"});
  SetDevice("nbd1", "43:32");
  SetDevice("nbd2", "43:64");  // not connected: no pid file
  SetDaemon("nbd3", "631");    // a snapshot: never mapped by this plugin
  SetCommandLine("631", {"rbd-nbd", "map", "rbd/img2@snap1"});
  SetDevice("nbd3", "43:96");
  SetDaemon("nbd4", "632");  // a stale pid: no such process
  SetDevice("nbd4", "43:128");
  SetDaemon("nbd5", "633");  // the pid went to another program
  SetCommandLine("633", {"sleep", "map", "rbd/img5"});
  SetDevice("nbd5", "43:160");
  SetDaemon("nbd10", "640");  // a flag without a value before the command; the default pool
  SetCommandLine("640", {"/usr/bin/rbd-nbd", "--read-only", "map", "img10"});
  SetDevice("nbd10", "43:320");
  SetDaemon("loop0", "628");  // not an nbd device
  SetDevice("loop0", "7:0");

  absl::StatusOr<std::vector<MappedDevice>> list = mapper_->List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, ElementsAre(MappedDevice{"/dev/nbd0", 43, 0, {"rbd", "img2"}},
                                 MappedDevice{"/dev/nbd1", 43, 32, {"rbd", "img3", "ns1"}},
                                 MappedDevice{"/dev/nbd10", 43, 320, {"rbd", "img10"}}));
  EXPECT_THAT(runner_.calls(), IsEmpty());

  // Find() looks through the same listing.
  absl::StatusOr<std::optional<MappedDevice>> found =
      mapper_->Find(ImageSpec{"rbd", "img3", "ns1"}, "");
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->path, "/dev/nbd1");
  EXPECT_EQ(Listings(), 0);
}

TEST_F(NbdMapperTest, ListWithoutNbdDevicesIsEmptyAndAMalformedNumberIsAnError) {
  absl::StatusOr<std::vector<MappedDevice>> list = mapper_->List();  // no /sys/block at all
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, IsEmpty());
  SetDaemon("nbd0", "628");
  SetCommandLine("628", DaemonArgv());
  SetDevice("nbd0", "43");
  EXPECT_THAT(mapper_->List(),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("/sys/block/nbd0/dev")));
}

// Mapper::Unmap's contract: the device comes from the caller's fresh Find()/List(), so Unmap
// checks that one device (its daemon's command line) and lists nothing.
TEST_F(NbdMapperTest, UnmapChecksTheOneDeviceAndListsNothing) {
  SetDaemon("nbd0", "628");
  SetCommandLine("628", DaemonArgv());
  runner_.Answer(0, "", "");
  ASSERT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd0", 43, 0, {"rbd", "img2"}}), IsOk());
  EXPECT_EQ(Listings(), 0);
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("rbd", "device", "unmap", "-t", "nbd", "/dev/nbd0"));
  EXPECT_THAT(checked_, ElementsAre(std::make_pair(std::string("/dev/nbd0"), pid_t{628})));
}

TEST_F(NbdMapperTest, ADeviceServingAnotherImageIsLeftAlone) {
  SetDaemon("nbd0", "628");
  SetCommandLine("628", DaemonArgv());
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd0", 43, 0, {"rbd", "other"}}), IsOk());
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd0", 43, 0, {"rbd", "img"}}), IsOk());
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd0", 43, 0, {"other", "img2"}}), IsOk());
  SetCommandLine("628", {"rbd-nbd", "map", "rbd/img2@snap1"});  // a snapshot is not the image
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd0", 43, 0, {"rbd", "img2"}}), IsOk());
  SetCommandLine("628", {"sleep", "map", "rbd/img2"});  // the pid went to another program
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd0", 43, 0, {"rbd", "img2"}}), IsOk());
  EXPECT_THAT(runner_.calls(), IsEmpty());  // no listing, no unmap
  EXPECT_THAT(probed_, IsEmpty());
}

// No daemon serves the device (it died, or the device was disconnected): nothing to unmap.
TEST_F(NbdMapperTest, ADeviceWithoutADaemonIsLeftAlone) {
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd1", 43, 32, {"rbd", "img2"}}), IsOk());
  SetDaemon("nbd1", "629");  // its pid is stale: no such process
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd1", 43, 32, {"rbd", "img2"}}), IsOk());
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(NbdMapperTest, AnImageInARadosNamespaceMatchesItsFullSpec) {
  SetDaemon("nbd2", "630");
  SetCommandLine("630", {"/usr/bin/rbd-nbd", "--id", "map", "map", "rbd/ns1/img2"});
  runner_.Answer(0, "", "");
  ASSERT_THAT(mapper_->Unmap(MappedDevice{"/dev/nbd2", 43, 64, {"rbd", "img2", "ns1"}}), IsOk());
  EXPECT_EQ(Listings(), 0);
  EXPECT_EQ(runner_.calls().size(), 1u);  // the unmap
}

TEST_F(NbdMapperTest, DaemonOfReadsTheDriversPid) {
  SetDaemon("nbd3", "4242");
  EXPECT_EQ(mapper_->DaemonOf("/dev/nbd3"), 4242);
  EXPECT_EQ(mapper_->DaemonOf("/dev/nbd4"), 0);
}

// The daemon keeps its device open by design: it is the device's server, never a holder.
TEST_F(NbdMapperTest, TheDaemonIsTheDevicesServer) {
  SetDaemon("nbd3", "4242");
  EXPECT_THAT(mapper_->Servers(MappedDevice{"/dev/nbd3", 43, 96, {}}), ElementsAre(4242));
  EXPECT_THAT(mapper_->Servers(MappedDevice{"/dev/nbd4", 43, 128, {}}), IsEmpty());
}

// A volume whose daemon died reads as abnormal, saying so (NodeGetVolumeStats' VolumeCondition).
TEST_F(NbdMapperTest, WhyGoneNamesADeadDaemon) {
  EXPECT_THAT(mapper_->WhyGone(MappedDevice{"/dev/nbd3", 43, 96, {}}),
              HasSubstr("no rbd-nbd daemon serves /dev/nbd3 any more"));
  SetDaemon("nbd3", "4242");
  EXPECT_THAT(mapper_->WhyGone(MappedDevice{"/dev/nbd3", 43, 96, {}}),
              HasSubstr("the rbd-nbd daemon (pid 4242) serving /dev/nbd3 is gone"));
  SetProcess("4242", "sleep", 'S');  // the number went to another process
  EXPECT_THAT(mapper_->WhyGone(MappedDevice{"/dev/nbd3", 43, 96, {}}), HasSubstr("is gone"));
  SetProcess("4242", "rbd-nbd", 'Z');
  EXPECT_THAT(mapper_->WhyGone(MappedDevice{"/dev/nbd3", 43, 96, {}}), HasSubstr("is gone"));
  SetProcess("4242", "rbd-nbd", 'S');
  EXPECT_EQ(mapper_->WhyGone(MappedDevice{"/dev/nbd3", 43, 96, {}}), "");
}

}  // namespace
}  // namespace rbdcsi
