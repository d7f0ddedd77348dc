// Test helper: a process whose second thread lives in a mount namespace of its own (made
// private, so host unmounts do not reach it), the way a multi-threaded daemon can end up holding
// a copy of a mount. Prints "ready <tid>" once the thread has moved, then waits to be killed.
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

int main() {
  std::thread holder([] {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      std::perror("unshare/mount");
      ::_exit(1);
    }
    std::printf("ready %ld\n", static_cast<long>(::syscall(SYS_gettid)));
    std::fflush(stdout);
    while (true) ::pause();
  });
  while (true) ::pause();
}
