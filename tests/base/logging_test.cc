#include "base/logging.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "base/text.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

TEST(EscapeTextTest, EscapesLineBreaksControlBytesAndBackslashes) {
  EXPECT_EQ(EscapeText("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(EscapeText(std::string("x\0y", 3)), "x\\x00y");
  EXPECT_EQ(EscapeText("\x1b[31mred\x7f"), "\\x1b[31mred\\x7f");
  EXPECT_EQ(EscapeText("C:\\n"), "C:\\\\n");  // a literal backslash-n stays distinguishable
}

TEST(EscapeTextTest, KeepsValidUtf8AndEscapesInvalidBytes) {
  EXPECT_EQ(EscapeText("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(EscapeText("\xff\xc3"), "\\xff\\xc3");           // invalid, cut
  EXPECT_EQ(EscapeText("\xc0\xaf"), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(EscapeText("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(EscapeText("\xe2\x80\xa8"), "\xe2\x80\xa8");     // U+2028 is valid UTF-8, one line
}

// Runs `body` with stderr redirected to a file and returns what it wrote.
std::string CaptureStderr(const std::function<void()>& body) {
  TempDir dir("logging");
  const std::string path = dir / "stderr";
  fflush(stderr);
  const int saved = dup(2);
  FILE* f = fopen(path.c_str(), "w");
  dup2(fileno(f), 2);
  body();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  fclose(f);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr char kForgedBytes[] =
    "vol\n2026-01-01T00:00:00.000+0000 I rpc: req=1 code=OK\0\r\x1b\xff\"";
const std::string kForged(kForgedBytes, sizeof(kForgedBytes) - 1);

TEST(LoggingTest, TextLinesCannotBeForged) {
  ASSERT_THAT(InitLogging("info", "text"), IsOk());
  const std::string out = CaptureStderr([] {
    auto log = Logger("logging_test");
    log->info("volume {}: error=\"{}\"", kForged, absl::InvalidArgumentError(kForged));
    log->flush();
  });
  const std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_EQ(out.find('\0'), std::string::npos);
  EXPECT_EQ(out.find('\r'), std::string::npos);
  EXPECT_NE(out.find("vol\\n2026-01-01"), std::string::npos) << out;
  EXPECT_NE(out.find("\\x00\\r\\x1b\\xff"), std::string::npos) << out;
}

TEST(LoggingTest, JsonMessageIsTheEscapedTextOfTheTextFormat) {
  ASSERT_THAT(InitLogging("info", "json"), IsOk());
  const std::string out = CaptureStderr([] {
    auto log = Logger("logging_test");
    log->warn("volume {} failed: {}", kForged, "a\\b");
    log->flush();
  });
  ASSERT_THAT(InitLogging("info", "text"), IsOk());
  const std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << out;
  const nlohmann::json line = nlohmann::json::parse(lines[0], nullptr, false);
  ASSERT_FALSE(line.is_discarded()) << lines[0];
  EXPECT_EQ(line["msg"].get<std::string>(), EscapeText("volume " + kForged + " failed: a\\b"));
  EXPECT_EQ(line["level"], "warning");
}

}  // namespace
}  // namespace rbdcsi
