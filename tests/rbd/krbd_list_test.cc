// What the krbd mapper reads: the kernel's /sys/bus/rbd/devices, and rbd's device list, status
// (watchers) and error output.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rbd/krbd_mapper.h"
#include "tests/rbd/krbd_fixture.h"
#include "tests/rbd/printers.h"
#include "tests/support/scripted_command_runner.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST_F(KrbdMapperTest, ListReportsImageHeadsInEveryNamespace) {
  runner_.Answer(0, Testdata("device_list.json"), "");
  devices_["/dev/rbd3"] = {252, 48};
  absl::StatusOr<std::vector<MappedDevice>> list = mapper_->List();
  ASSERT_THAT(list, IsOk());
  // rbd2 is a snapshot (never mapped by this plugin); rbd3's image lives in a RADOS namespace,
  // as a volume of a cluster configured with one (or a radosNamespace parameter) does.
  EXPECT_THAT(
      *list,
      ElementsAre(MappedDevice{"/dev/rbd0", 252, 0, {"replicapool", "csi-vol-0a1b2c3d"}},
                  MappedDevice{"/dev/rbd1", 252, 16, {"replicapool", "csi-vol-4e5f6a7b"}},
                  MappedDevice{"/dev/rbd3", 252, 48, {"replicapool", "csi-vol-8c9d0e1f", "tenant-a"}}));
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("rbd", "device", "list", "--format", "json"));
}

TEST_F(KrbdMapperTest, ListFailureIsAnError) {
  runner_.Answer(1, "", "rbd: device list failed: (1) Operation not permitted\n");
  EXPECT_THAT(mapper_->List(),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("Operation not permitted")));
}

TEST(ParseRbdDeviceListTest, ParsesCapturedOutput) {
  absl::StatusOr<std::vector<RbdDeviceEntry>> entries =
      ParseRbdDeviceList(Testdata("device_list.json"));
  ASSERT_THAT(entries, IsOk());
  ASSERT_EQ(entries->size(), 4u);
  const RbdDeviceEntry& e = (*entries)[3];
  EXPECT_EQ(e.id, "3");
  EXPECT_EQ(e.pool, "replicapool");
  EXPECT_EQ(e.nspace, "tenant-a");
  EXPECT_EQ(e.name, "csi-vol-8c9d0e1f");
  EXPECT_EQ(e.snap, "-");
  EXPECT_EQ(e.device, "/dev/rbd3");
  EXPECT_EQ((*entries)[2].snap, "snap1");
}

TEST(ParseRbdDeviceListTest, ParsesEmptyAndLegacyForms) {
  absl::StatusOr<std::vector<RbdDeviceEntry>> empty =
      ParseRbdDeviceList(Testdata("device_list_empty.json"));
  ASSERT_THAT(empty, IsOk());
  EXPECT_THAT(*empty, IsEmpty());
  ASSERT_THAT(ParseRbdDeviceList(""), IsOk());

  absl::StatusOr<std::vector<RbdDeviceEntry>> legacy =
      ParseRbdDeviceList(Testdata("device_list_luminous.json"));
  ASSERT_THAT(legacy, IsOk());
  ASSERT_EQ(legacy->size(), 2u);
  EXPECT_EQ((*legacy)[1].id, "1");
  EXPECT_EQ((*legacy)[1].name, "other");
  EXPECT_EQ((*legacy)[1].device, "/dev/rbd1");
}

TEST(ParseRbdDeviceListTest, RejectsGarbage) {
  for (const std::string& text : {std::string("rbd: error\n"), std::string("42"),
                                  std::string("[{\"pool\":\"p\"}]"), std::string("[1]")}) {
    EXPECT_THAT(ParseRbdDeviceList(text),
                StatusIs(absl::StatusCode::kInternal, HasSubstr("rbd device list")))
        << text;
  }
}

TEST(DecodeCommandOutputTest, MakesOneReadableLine) {
  EXPECT_EQ(DecodeCommandOutput("  rbd: a\n\n rbd: b \r\n"), "rbd: a; rbd: b");
  EXPECT_EQ(DecodeCommandOutput(std::string("x\0y\x1b\xff", 5)), "x?y??");
  EXPECT_EQ(DecodeCommandOutput(std::string(5000, 'a')).size(), 1003u);
}

TEST_F(KrbdMapperTest, ListReadsTheKernelsSysfsWithoutRunningRbd) {
  AddSysfsDevice("0", SysfsImage("csi-vol-0a1b2c3d", "0"));
  AddSysfsDevice("1", SysfsImage("csi-vol-4e5f6a7b", "16"));
  std::map<std::string, std::string> snapshot = SysfsImage("csi-vol-1", "32");
  snapshot["current_snap"] = "snap1";
  AddSysfsDevice("2", snapshot);
  std::map<std::string, std::string> in_namespace = SysfsImage("csi-vol-2", "48");
  in_namespace["pool_ns"] = "tenant";
  AddSysfsDevice("3", in_namespace);
  std::map<std::string, std::string> old_kernel = SysfsImage("csi-vol-3", "");
  old_kernel.erase("minor");  // no single-major numbering: minor 0
  old_kernel.erase("pool_ns");
  AddSysfsDevice("10", old_kernel);

  absl::StatusOr<std::vector<MappedDevice>> list = mapper_->List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list,
              ElementsAre(MappedDevice{"/dev/rbd0", 252, 0, {"replicapool", "csi-vol-0a1b2c3d"}},
                          MappedDevice{"/dev/rbd1", 252, 16, {"replicapool", "csi-vol-4e5f6a7b"}},
                          MappedDevice{"/dev/rbd3", 252, 48, {"replicapool", "csi-vol-2", "tenant"}},
                          MappedDevice{"/dev/rbd10", 252, 0, {"replicapool", "csi-vol-3"}}));
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

// A volume in a RADOS namespace: its device is found and unmapped by the full spec. (Before,
// List() left such devices out and Unmap() took them for another image's: unstage reported OK
// and the device stayed mapped, the seed incident's leak.)
TEST_F(KrbdMapperTest, AnImageInARadosNamespaceIsFoundAndUnmappedByItsFullSpec) {
  std::map<std::string, std::string> in_namespace = SysfsImage("csi-vol-2", "48");
  in_namespace["pool_ns"] = "tenant";
  AddSysfsDevice("3", in_namespace);
  const ImageSpec image{"replicapool", "csi-vol-2", "tenant"};
  absl::StatusOr<std::optional<MappedDevice>> found = mapper_->Find(image, "");
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->path, "/dev/rbd3");
  // The same image name in the default namespace is another image: left alone.
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/rbd3", 252, 48, {"replicapool", "csi-vol-2"}}),
              IsOk());
  EXPECT_THAT(runner_.calls(), IsEmpty());
  runner_.Answer(0, "", "");
  EXPECT_THAT(mapper_->Unmap(**found), IsOk());
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("rbd", "device", "unmap", "/dev/rbd3"));
}

TEST_F(KrbdMapperTest, UnmapChecksTheImageInSysfs) {
  AddSysfsDevice("1", SysfsImage("csi-vol-4e5f6a7b", "16"));
  // The device name was reused for another image: left alone, no rbd call at all.
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/rbd1", 252, 16, {"replicapool", "csi-vol-1"}}),
              IsOk());
  EXPECT_THAT(runner_.calls(), IsEmpty());
  runner_.Answer(0, "", "");
  EXPECT_THAT(
      mapper_->Unmap(MappedDevice{"/dev/rbd1", 252, 16, {"replicapool", "csi-vol-4e5f6a7b"}}),
      IsOk());
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("rbd", "device", "unmap", "/dev/rbd1"));
}

TEST_F(KrbdMapperTest, UnmapReadsOnlyItsOwnDeviceInSysfs) {
  // The caller has just listed: Unmap looks at /dev/rbd1 alone. A listing would fail on the
  // malformed entry of device 4.
  AddSysfsDevice("1", SysfsImage("csi-vol-4e5f6a7b", "16"));
  std::map<std::string, std::string> bad = SysfsImage("csi-vol-1", "0");
  bad["major"] = "x";
  AddSysfsDevice("4", bad);
  ASSERT_FALSE(mapper_->List().ok());
  runner_.Answer(0, "", "");
  EXPECT_THAT(
      mapper_->Unmap(MappedDevice{"/dev/rbd1", 252, 16, {"replicapool", "csi-vol-4e5f6a7b"}}),
      IsOk());
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_THAT(runner_.calls()[0], ElementsAre("rbd", "device", "unmap", "/dev/rbd1"));
  // A device the kernel does not know (gone, or a partition's name) is left alone.
  EXPECT_THAT(
      mapper_->Unmap(MappedDevice{"/dev/rbd7", 252, 112, {"replicapool", "csi-vol-4e5f6a7b"}}),
      IsOk());
  EXPECT_EQ(runner_.calls().size(), 1u);
}

TEST(ParseRbdWatchersTest, NamesEveryWatcherAndRejectsGarbage) {
  absl::StatusOr<std::vector<std::string>> watchers =
      ParseRbdWatchers(Testdata("status_one_watcher.json"));
  ASSERT_THAT(watchers, IsOk());
  EXPECT_THAT(*watchers, ElementsAre("client.4109 at 127.0.0.1:0/3182436296"));
  EXPECT_THAT(ParseRbdWatchers("{\"watchers\":[]}"), IsOk());
  EXPECT_THAT(ParseRbdWatchers("rbd: error"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("rbd status")));
}

TEST_F(KrbdMapperTest, AnEmptySysfsMeansNothingIsMapped) {
  ASSERT_THAT(MakeDirs(dir_.path() + "/sys/bus/rbd/devices", 0755), IsOk());
  absl::StatusOr<std::vector<MappedDevice>> list = mapper_->List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, IsEmpty());
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(KrbdMapperTest, AMalformedSysfsEntryIsAnErrorNamingTheFile) {
  std::map<std::string, std::string> bad = SysfsImage("csi-vol-1", "0");
  bad["major"] = "x";
  AddSysfsDevice("4", bad);
  EXPECT_THAT(mapper_->List(),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("/sys/bus/rbd/devices/4/major")));
}

}  // namespace
}  // namespace rbdcsi
