#include "base/text.h"

#include "gtest/gtest.h"

namespace rbdcsi {
namespace {

TEST(IsValidUtf8Test, AcceptsUtf8AndRejectsJunk) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii \t\n"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xf4\x8f\xbf\xbf"));  // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // cut
  EXPECT_FALSE(IsValidUtf8("\xc1\xbf"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\x80"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xbf\xbf"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xf5\x80\x80\x80"));
}

TEST(RedactSecretsTest, RemovesSecretsOfAnyLengthAndBytes) {
  EXPECT_EQ(RedactSecrets("key=abc rest", {"abc"}), "key=<redacted> rest");
  EXPECT_EQ(RedactSecrets("k x k", {"k"}), "<redacted> x <redacted>");
  EXPECT_EQ(RedactSecrets("bad key A\tB\r\xff!", {"A\tB\r\xff"}), "bad key <redacted>!");
  EXPECT_EQ(RedactSecrets(std::string("n\0ul", 4), {std::string("\0u", 2)}), "n<redacted>l");
}

TEST(RedactSecretsTest, LongerSecretsGoFirstAndEmptyOnesAreIgnored) {
  EXPECT_EQ(RedactSecrets("user admin2 key", {"", "admin", "admin2"}), "user <redacted> key");
  EXPECT_EQ(RedactSecrets("nothing here", {}), "nothing here");
}

}  // namespace
}  // namespace rbdcsi
