#include "base/command.h"

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

TEST(RealCommandRunnerTest, CapturesOutputAndExitCode) {
  auto runner = NewRealCommandRunner();
  auto result = runner->Run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->out, "out\n");
  EXPECT_EQ(result->err, "err\n");
}

TEST(RealCommandRunnerTest, PassesArgumentsVerbatimWithoutAShell) {
  auto runner = NewRealCommandRunner();
  auto result = runner->Run({"printf", "%s|", "a b", "$HOME", ";rm -rf /"});
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->out, "a b|$HOME|;rm -rf /|");
}

TEST(RealCommandRunnerTest, FeedsStdinAndSetsEnvironment) {
  auto runner = NewRealCommandRunner();
  CommandOptions options;
  options.stdin_data = std::string(200000, 'k');
  options.env["RBDCSI_TEST_VAR"] = "v1";
  auto result = runner->Run({"sh", "-c", "wc -c; echo $RBDCSI_TEST_VAR"}, options);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->out, "200000\nv1\n");
}

TEST(RealCommandRunnerTest, MissingProgramIsNotFound) {
  auto runner = NewRealCommandRunner();
  EXPECT_THAT(runner->Run({"rbdcsi-no-such-program"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("rbdcsi-no-such-program")));
}

TEST(RealCommandRunnerTest, KillsAProgramPastItsTimeout) {
  auto runner = NewRealCommandRunner();
  CommandOptions options;
  options.timeout = std::chrono::milliseconds(100);
  EXPECT_THAT(runner->Run({"sleep", "30"}, options),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("sleep")));
}

// A program that closes its output and keeps running (as a hung `rbd device map` waiting for
// udev can) is still bounded by the timeout.
TEST(RealCommandRunnerTest, KillsAProgramThatClosedItsOutputPastItsTimeout) {
  auto runner = NewRealCommandRunner();
  CommandOptions options;
  options.timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(runner->Run({"sh", "-c", "exec >/dev/null 2>&1; sleep 30"}, options),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("sh")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

}  // namespace
}  // namespace rbdcsi
