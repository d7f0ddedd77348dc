#include "rbd/mapper_registry.h"

#include <memory>

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class NamedMapper : public Mapper {
 public:
  explicit NamedMapper(std::string name) : name_(std::move(name)) {}
  std::string_view Name() const override { return name_; }
  MapperTraits Traits() const override { return {}; }
  absl::StatusOr<MappedDevice> Map(const MapOptions&) override { return MappedDevice{}; }
  absl::Status Unmap(const MappedDevice&) override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<MappedDevice>> List() override { return std::vector<MappedDevice>(); }
  absl::Status RefreshCapacity(const MappedDevice&) override { return absl::OkStatus(); }

 private:
  std::string name_;
};

TEST(MapperRegistryTest, FindsByNameListsInNameOrderAndRefusesDuplicates) {
  MapperRegistry registry;
  NamedMapper loop("loop");
  ASSERT_THAT(registry.AddUnowned(&loop), IsOk());
  ASSERT_THAT(registry.Add(std::make_unique<NamedMapper>("krbd")), IsOk());
  EXPECT_THAT(registry.Add(std::make_unique<NamedMapper>("loop")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("loop")));
  EXPECT_THAT(registry.Add(std::make_unique<NamedMapper>("")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(*registry.Find("loop"), &loop);
  EXPECT_EQ((*registry.Find("krbd"))->Name(), "krbd");
  EXPECT_THAT(registry.Find("nbd"), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("unknown mapper 'nbd': this node has "
                                                       "krbd, loop")));
  EXPECT_THAT(registry.Names(), ElementsAre("krbd", "loop"));
  ASSERT_EQ(registry.All().size(), 2u);
  EXPECT_EQ(registry.All()[1], &loop);
}

}  // namespace
}  // namespace rbdcsi
