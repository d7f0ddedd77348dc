#include "base/command.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

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

// Alive and not a zombie (a zombie has let go of everything it held).
bool Running(pid_t pid) {
  const std::string stat = ReadFileOrEmpty("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

pid_t ReadPid(const std::string& path) {
  pid_t pid = 0;
  WaitFor([&] { return (pid = atoi(ReadFileOrEmpty(path).c_str())) > 0; },
          std::chrono::seconds(10));
  return pid;
}

TEST(RealCommandRunnerTest, TheTimeoutKillsWhatTheChildStartedToo) {
  TempDir dir("command");
  auto runner = NewRealCommandRunner();
  CommandOptions options;
  options.timeout = std::chrono::milliseconds(300);
  const std::string pid_file = dir / "grandchild";
  EXPECT_THAT(runner->Run({"sh", "-c", "sleep 100 & echo $! > " + pid_file + "; wait"}, options),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("sh")));
  const pid_t grandchild = ReadPid(pid_file);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(WaitFor([&] { return !Running(grandchild); }, std::chrono::seconds(10)));
}

// A plugin killed while `rbd map` runs must not leave the child to finish the mapping later.
TEST(RealCommandRunnerTest, TheChildDiesWithTheProcessThatStartedIt) {
  TempDir dir("command");
  const std::string pid_file = dir / "child";
  const pid_t plugin = fork();
  ASSERT_GE(plugin, 0);
  if (plugin == 0) {  // stands in for the plugin: runs a slow child, then is SIGKILLed
    auto runner = NewRealCommandRunner();
    (void)runner->Run({"sh", "-c", "echo $$ > " + pid_file + "; exec sleep 100"});
    _exit(0);
  }
  const pid_t child = ReadPid(pid_file);
  kill(plugin, SIGKILL);
  int status = 0;
  waitpid(plugin, &status, 0);
  ASSERT_GT(child, 0);
  EXPECT_TRUE(WaitFor([&] { return !Running(child); }, std::chrono::seconds(10)))
      << "the child " << child << " outlived its parent";
  if (Running(child)) kill(child, SIGKILL);
}

}  // namespace
}  // namespace rbdcsi
