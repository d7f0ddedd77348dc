#include "rbd/loop_mapper.h"

#include <memory>

#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rbd/fake_loop_devices.h"
#include "tests/rbd/printers.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class LoopMapperTest : public ::testing::Test {
 protected:
  LoopMapperTest() {
    auto devices = std::make_unique<FakeLoopDevices>();
    devices_ = devices.get();
    mapper_ = std::make_unique<LoopMapper>(LoopImageStore(dir_.path()), std::move(devices));
  }

  std::string PathOf(const ImageSpec& spec) { return mapper_->store().PathOf(spec); }

  MapOptions Options(const ImageSpec& spec, bool read_only = false) {
    MapOptions options;
    options.image = spec;
    options.read_only = read_only;
    return options;
  }

  TempDir dir_{"loop-mapper"};
  LoopImageStore store_{dir_.path()};  // the same images as the mapper's
  FakeLoopDevices* devices_ = nullptr;
  std::unique_ptr<LoopMapper> mapper_;
};

TEST_F(LoopMapperTest, NameIsLoop) { EXPECT_EQ(mapper_->Name(), "loop"); }

TEST_F(LoopMapperTest, MapAttachesTheImageFile) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 1 << 20), IsOk());
  devices_->next_minor = 5;
  absl::StatusOr<MappedDevice> device = mapper_->Map(Options({"pool", "img"}, true));
  ASSERT_THAT(device, IsOk());
  EXPECT_EQ(device->path, "/dev/loop5");
  EXPECT_EQ(device->major, 7u);
  EXPECT_EQ(device->minor, 5u);
  EXPECT_EQ(device->image, (ImageSpec{"pool", "img"}));
  EXPECT_THAT(devices_->log, ElementsAre("attach " + PathOf({"pool", "img"}) + " ro"));
}

TEST_F(LoopMapperTest, MapOfMissingImageIsNotFoundAndAttachesNothing) {
  EXPECT_THAT(mapper_->Map(Options({"pool", "missing"})),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("pool/missing")));
  EXPECT_THAT(devices_->log, IsEmpty());
}

TEST_F(LoopMapperTest, MapRejectsMalformedSpec) {
  EXPECT_THAT(mapper_->Map(Options({"..", "img"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pool")));
  EXPECT_THAT(devices_->log, IsEmpty());
}

TEST_F(LoopMapperTest, MapRollsBackWhenTheDeviceCannotBeExamined) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 4096), IsOk());
  devices_->hidden.insert("/dev/loop0");
  EXPECT_THAT(mapper_->Map(Options({"pool", "img"})),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("/dev/loop0")));
  EXPECT_THAT(devices_->log, ElementsAre("attach " + PathOf({"pool", "img"}) + " rw",
                                         "detach /dev/loop0 " + PathOf({"pool", "img"})));
  EXPECT_THAT(devices_->attached, IsEmpty());
}

TEST_F(LoopMapperTest, ListReportsOnlyThisStoresDevices) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 4096), IsOk());
  devices_->AddForeign("/dev/loop0", "/var/lib/docker/devicemapper/data", 0);
  devices_->AddForeign("/dev/loop1", mapper_->store().ImagesDir() + "2/pool/img.img", 1);
  devices_->AddForeign("/dev/loop2", mapper_->store().ImagesDir() + "/pool/notes.txt", 2);
  devices_->next_minor = 3;
  ASSERT_THAT(mapper_->Map(Options({"pool", "img"})), IsOk());

  absl::StatusOr<std::vector<MappedDevice>> list = mapper_->List();
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, ElementsAre(MappedDevice{"/dev/loop3", 7, 3, {"pool", "img"}}));
}

TEST_F(LoopMapperTest, UnmapDetachesOnlyWhenAttachedToTheImage) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 4096), IsOk());
  absl::StatusOr<MappedDevice> device = mapper_->Map(Options({"pool", "img"}));
  ASSERT_THAT(device, IsOk());
  EXPECT_THAT(mapper_->Unmap(*device), IsOk());
  EXPECT_THAT(devices_->attached, IsEmpty());
  EXPECT_EQ(devices_->log.back(), "detach /dev/loop0 " + PathOf({"pool", "img"}));
  // Unmapping again is OK.
  EXPECT_THAT(mapper_->Unmap(*device), IsOk());
}

TEST_F(LoopMapperTest, UnmapLeavesADeviceReusedForAnotherFileAlone) {
  devices_->AddForeign("/dev/loop0", "/srv/someone-else.img", 0);
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/loop0", 7, 0, {"pool", "img"}}), IsOk());
  EXPECT_EQ(devices_->attached.count("/dev/loop0"), 1u);
}

TEST_F(LoopMapperTest, UnmapWithoutImageOnlyTouchesOwnDevices) {
  devices_->AddForeign("/dev/loop0", "/srv/someone-else.img", 0);
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/loop0", 7, 0, {}}), IsOk());
  EXPECT_EQ(devices_->attached.count("/dev/loop0"), 1u);
  EXPECT_THAT(devices_->log, IsEmpty());

  ASSERT_THAT(store_.Create({"pool", "img"}, 4096), IsOk());
  devices_->next_minor = 1;
  ASSERT_THAT(mapper_->Map(Options({"pool", "img"})), IsOk());
  EXPECT_THAT(mapper_->Unmap(MappedDevice{"/dev/loop1", 0, 0, {}}), IsOk());
  EXPECT_EQ(devices_->attached.count("/dev/loop1"), 0u);
}

TEST_F(LoopMapperTest, UnmapOfHeldDeviceIsBusyAndKeepsIt) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 4096), IsOk());
  absl::StatusOr<MappedDevice> device = mapper_->Map(Options({"pool", "img"}));
  ASSERT_THAT(device, IsOk());
  devices_->busy.insert(device->path);
  absl::Status status = mapper_->Unmap(*device);
  EXPECT_TRUE(IsBusy(status)) << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("/dev/loop0")));
  EXPECT_EQ(devices_->attached.count(device->path), 1u);
}

TEST_F(LoopMapperTest, UnmapRejectsEmptyPath) {
  EXPECT_THAT(mapper_->Unmap(MappedDevice{}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("device")));
}

TEST_F(LoopMapperTest, RefreshCapacityOnlyForOwnDevices) {
  ASSERT_THAT(store_.Create({"pool", "img"}, 4096), IsOk());
  absl::StatusOr<MappedDevice> device = mapper_->Map(Options({"pool", "img"}));
  ASSERT_THAT(device, IsOk());
  EXPECT_THAT(mapper_->RefreshCapacity(*device), IsOk());
  EXPECT_EQ(devices_->log.back(), "set-capacity /dev/loop0");

  devices_->AddForeign("/dev/loop9", "/srv/other.img", 9);
  EXPECT_THAT(mapper_->RefreshCapacity(MappedDevice{"/dev/loop9", 7, 9, {}}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/dev/loop9")));
  EXPECT_EQ(devices_->log.back(), "set-capacity /dev/loop0");
}

TEST_F(LoopMapperTest, ListErrorsPropagate) {
  devices_->list_error = absl::InternalError("sysfs is gone");
  EXPECT_THAT(mapper_->List(), StatusIs(absl::StatusCode::kInternal, HasSubstr("sysfs")));
}

}  // namespace
}  // namespace rbdcsi
