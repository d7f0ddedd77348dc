// tests/support's ChildProcess: the pid is the program's own, and no child outlives its test.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

std::string Comm(pid_t pid) { return ReadFileOrEmpty("/proc/" + std::to_string(pid) + "/comm"); }

// The third field of /proc/PID/stat: R, S, Z, ...; "" when the pid does not exist.
std::string State(pid_t pid) {
  const std::string stat = ReadFileOrEmpty("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? "" : stat.substr(paren + 2, 1);
}

TEST(ChildProcessTest, PidIsTheProgramsOwnAsSoonAsItIsStarted) {
  TempDir dir("child");
  ChildProcess child({"sleep", "1000"}, dir.path());
  ASSERT_GT(child.pid(), 0);
  EXPECT_EQ(Comm(child.pid()), "sleep\n");  // exec has happened when the constructor returns
  child.Signal(SIGKILL);
  EXPECT_EQ(child.Wait(std::chrono::seconds(10)), 128 + SIGKILL);
}

TEST(ChildProcessTest, CapturesOutputAndExitCode) {
  TempDir dir("child");
  ChildProcess child({"sh", "-c", "echo out; echo err >&2; read x; exit 3"}, dir.path());
  EXPECT_EQ(child.Wait(std::chrono::seconds(10)), 3);  // stdin is /dev/null
  EXPECT_EQ(child.Stdout(), "out\n");
  EXPECT_EQ(child.Stderr(), "err\n");
}

TEST(ChildProcessTest, MissingProgramHasNoPid) {
  TempDir dir("child");
  ChildProcess child({"rbdcsi-no-such-program"}, dir.path());
  EXPECT_EQ(child.pid(), -1);
  EXPECT_EQ(child.Wait(std::chrono::seconds(1)), std::nullopt);
  ChildProcess not_executable({"/dev/null"}, dir.path());
  EXPECT_EQ(not_executable.pid(), -1);
}

// As when a test crashes: the child must not outlive who started it. The signal comes when
// the starting thread exits, which is what can be tried here without killing the test.
TEST(ChildProcessTest, ChildIsKilledWhenTheThreadThatStartedItExits) {
  TempDir dir("child");
  std::unique_ptr<ChildProcess> child;
  std::thread([&] {
    child = std::make_unique<ChildProcess>(std::vector<std::string>{"sleep", "1000"}, dir.path());
  }).join();
  ASSERT_GT(child->pid(), 0);
  EXPECT_TRUE(WaitFor([&] { return State(child->pid()) == "Z"; }, std::chrono::seconds(10)))
      << "state " << State(child->pid());
  EXPECT_EQ(child->Wait(std::chrono::seconds(10)), 128 + SIGKILL);
}

}  // namespace
}  // namespace rbdcsi
