// base/forked_child: what a forked child writes comes back with its exit status; a child that
// hangs is killed at the bound and the caller gets DEADLINE_EXCEEDED; every child dies with its
// parent (PR_SET_PDEATHSIG).
#include "base/forked_child.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "base/fd.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

TEST(ForkedChildTest, ReturnsWhatTheChildWroteAndItsExitStatus) {
  absl::StatusOr<ForkedChildResult> r =
      RunForkedChild("saying hello", std::chrono::seconds(60), [](int out) {
        const char hello[] = "hello";
        if (::write(out, hello, sizeof(hello) - 1) != sizeof(hello) - 1) ::_exit(1);
        ::_exit(3);
      });
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->output, "hello");
  ASSERT_TRUE(WIFEXITED(r->wait_status));
  EXPECT_EQ(WEXITSTATUS(r->wait_status), 3);
}

TEST(ForkedChildTest, CollectsMoreThanAPipeHolds) {
  absl::StatusOr<ForkedChildResult> r =
      RunForkedChild("writing a lot", std::chrono::seconds(60), [](int out) {
        char block[4096];
        for (char& c : block) c = 'x';
        for (int i = 0; i < 256; ++i) {  // 1 MiB; a pipe holds 64 KiB
          if (::write(out, block, sizeof(block)) != sizeof(block)) ::_exit(1);
        }
      });
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->output.size(), 256u * 4096u);
  EXPECT_TRUE(WIFEXITED(r->wait_status) && WEXITSTATUS(r->wait_status) == 0);
}

TEST(ForkedChildTest, TheChildDiesWithItsParent) {
  absl::StatusOr<ForkedChildResult> r =
      RunForkedChild("asking for the parent-death signal", std::chrono::seconds(60), [](int out) {
        int signal = 0;
        if (::prctl(PR_GET_PDEATHSIG, &signal) != 0) ::_exit(1);
        if (::write(out, &signal, sizeof(signal)) != sizeof(signal)) ::_exit(1);
      });
  ASSERT_THAT(r.status(), IsOk());
  ASSERT_EQ(r->output.size(), sizeof(int));
  int signal = 0;
  std::memcpy(&signal, r->output.data(), sizeof(signal));
  EXPECT_EQ(signal, SIGKILL);
}

// The hanging child reports its pid through `pids` first; after the call it must be gone
// (killed and reaped: no zombie either).
void ExpectKilledAtTheBound(void (*hang)(int out)) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd pid_r(fds[0]), pid_w(fds[1]);
  const int report = pid_w.get();
  absl::StatusOr<ForkedChildResult> r =
      RunForkedChild("hanging on purpose", std::chrono::milliseconds(200), [report, hang](int out) {
        const pid_t self = ::getpid();
        if (::write(report, &self, sizeof(self)) != sizeof(self)) ::_exit(1);
        hang(out);
      });
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                   HasSubstr("hanging on purpose: the helper process did not "
                                             "finish within 200 ms and was killed")));
  pid_w.reset();
  pid_t child = 0;
  ASSERT_EQ(::read(pid_r.get(), &child, sizeof(child)), static_cast<ssize_t>(sizeof(child)));
  EXPECT_EQ(::kill(child, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(ForkedChildTest, AChildThatHangsIsKilledAtTheBound) {
  ExpectKilledAtTheBound([](int) {
    for (;;) ::pause();
  });
}

TEST(ForkedChildTest, AChildThatClosesItsOutputAndHangsIsKilledAtTheBound) {
  ExpectKilledAtTheBound([](int out) {
    ::close(out);
    for (;;) ::pause();
  });
}

}  // namespace
}  // namespace rbdcsi
