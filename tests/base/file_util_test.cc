// ReplaceFile: the atomic replacement the volume records and gc's memory are written with.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The names in `dir`, sorted.
std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ReplaceFileTest, WritesThenReplacesAPrivateFileAndLeavesNoTemporary) {
  TempDir dir("file-util");
  const std::string path = dir / "record.json";
  ASSERT_THAT(ReplaceFile(path, "first\n"), IsOk());
  ASSERT_THAT(ReplaceFile(path, "second, longer\n"), IsOk());
  EXPECT_EQ(ReadFileOrEmpty(path), "second, longer\n");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_THAT(Names(dir.path()), ElementsAre("record.json"));
}

TEST(ReplaceFileTest, AFailureLeavesThePathAsItWasAndNoTemporary) {
  TempDir dir("file-util");
  EXPECT_THAT(ReplaceFile(dir / "missing/record.json", "x"),
              StatusIs(absl::StatusCode::kNotFound));
  // rename() cannot put a file over a directory: the temporary file is removed again.
  ASSERT_THAT(MakeDirs(dir / "taken", 0755), IsOk());
  absl::Status st = ReplaceFile(dir / "taken", "x");
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("renaming"));
  EXPECT_TRUE(std::filesystem::is_directory(dir / "taken"));
  EXPECT_THAT(Names(dir.path()), ElementsAre("taken"));
}

}  // namespace
}  // namespace rbdcsi
