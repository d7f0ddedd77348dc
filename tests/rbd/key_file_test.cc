#include "rbd/key_file.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::UnorderedElementsAre;

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    out.push_back(entry.path().filename().string());
  }
  return out;
}

// The filesystem type of the mount `path` lies on, from /proc/self/mountinfo: independent of
// the statfs() that KeyFile::InMemory uses. "" when not found.
std::string FsTypeOf(const std::string& path) {
  const std::string canonical = std::filesystem::canonical(path).string();
  std::string type;
  size_t best = 0;
  for (absl::string_view line : absl::StrSplit(ReadFileOrEmpty("/proc/self/mountinfo"), '\n')) {
    std::vector<absl::string_view> halves = absl::StrSplit(line, " - ");
    if (halves.size() != 2) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(halves[0], ' ');
    std::vector<absl::string_view> rest = absl::StrSplit(halves[1], ' ');
    if (fields.size() < 5 || rest.empty()) continue;
    const std::string mount_point(fields[4]);
    const bool covers = mount_point == "/" || canonical == mount_point ||
                        absl::StartsWith(canonical, mount_point + "/");
    // Later lines are mounted on top of earlier ones at the same point.
    if (covers && mount_point.size() >= best) {
      best = mount_point.size();
      type = std::string(rest[0]);
    }
  }
  return type;
}

TEST(KeyFileTest, RemoveStaleRemovesOnlyKeyDirectories) {
  TempDir parent("keys");
  for (const char* dir :
       {"rbdcsi-key-Ab12Cd", "rbdcsi-key-XyZ789", "rbdcsi-keys", "other", "x-rbdcsi-key-123456"}) {
    ASSERT_TRUE(std::filesystem::create_directory(parent / dir)) << dir;
  }
  std::ofstream(parent / "rbdcsi-key-Ab12Cd/key") << "AQBsecret==";
  ASSERT_EQ(chmod((parent / "rbdcsi-key-Ab12Cd/key").c_str(), 0600), 0);
  std::ofstream(parent / "other/key") << "kept";
  std::ofstream(parent / "rbdcsi-key.txt") << "kept";

  EXPECT_EQ(KeyFile::RemoveStale(parent.path()), 2);
  EXPECT_THAT(
      Entries(parent.path()),
      UnorderedElementsAre("rbdcsi-keys", "other", "x-rbdcsi-key-123456", "rbdcsi-key.txt"));
  EXPECT_EQ(ReadFileOrEmpty(parent / "other/key"), "kept");

  EXPECT_EQ(KeyFile::RemoveStale(parent.path()), 0);  // nothing left to remove
}

TEST(KeyFileTest, RemoveStaleRemovesWhatALiveKeyFileLeftAndToleratesAMissingParent) {
  TempDir parent("keys");
  absl::StatusOr<std::unique_ptr<KeyFile>> file = KeyFile::Create(parent / "run", "AQBkey==");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE(std::filesystem::exists((*file)->path()));
  // As after a crash: the directory of a key file nobody will remove.
  EXPECT_EQ(KeyFile::RemoveStale(parent / "run"), 1);
  EXPECT_FALSE(std::filesystem::exists((*file)->path()));
  EXPECT_TRUE(std::filesystem::is_empty(parent / "run"));
  file->reset();  // its destructor copes with the files being gone

  EXPECT_EQ(KeyFile::RemoveStale(parent / "missing"), 0);
  EXPECT_FALSE(std::filesystem::exists(parent / "missing"));
}

TEST(KeyFileTest, InMemory) {
  ASSERT_EQ(FsTypeOf("/dev/shm"), "tmpfs") << "this host's /dev/shm is not tmpfs";
  EXPECT_TRUE(KeyFile::InMemory("/dev/shm"));
  EXPECT_FALSE(KeyFile::InMemory("/proc"));
  EXPECT_FALSE(KeyFile::InMemory("/nonexistent/rbdcsi-keys"));  // cannot be checked

  // A TempDir (under $TMPDIR or /tmp) may be on tmpfs or on a disk, depending on the host.
  TempDir dir("keys");
  const std::string type = FsTypeOf(dir.path());
  ASSERT_FALSE(type.empty()) << dir.path();
  EXPECT_EQ(KeyFile::InMemory(dir.path()), type == "tmpfs" || type == "ramfs") << type;
}

}  // namespace
}  // namespace rbdcsi
