// FakeMounter is thread-safe as Mounter promises: concurrent mounts, lists and unmounts from many
// threads leave a consistent table and a complete action log.
#include "mounter/testing/fake_mounter.h"

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::IsEmpty;

TEST(FakeMounterTest, ConcurrentCallsKeepTheTableAndLogWhole) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 200;
  ActionLog log;
  FailureScript script;
  FakeMounter mounter(&log, &script);
  std::vector<std::thread> threads;
  std::vector<std::set<int>> ids(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        const std::string target = absl::StrCat("/mnt/", t, "/", r);
        EXPECT_THAT(mounter.Mount("/dev/fake0", target, "ext4", ""), IsOk());
        absl::StatusOr<std::vector<MountInfo>> table = mounter.List();
        ASSERT_TRUE(table.ok());
        for (const MountInfo& m : *table) {
          if (m.mount_point == target) ids[t].insert(m.mount_id);
        }
        EXPECT_THAT(mounter.Unmount(target), IsOk());
      }
    });
  }
  for (std::thread& t : threads) t.join();

  EXPECT_THAT(mounter.table(), IsEmpty());
  EXPECT_EQ(log.size(), 2u * kThreads * kRounds);
  std::set<int> all;
  for (const std::set<int>& s : ids) {
    EXPECT_EQ(s.size(), static_cast<size_t>(kRounds));  // each mount saw its own fresh id
    all.insert(s.begin(), s.end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kRounds));  // no id handed out twice
}

}  // namespace
}  // namespace rbdcsi
