// The children the real ProcFs and NamespaceUnmounter fork are bounded by the timeout they are
// built with (base/forked_child_test.cc shows a hanging child killed at the bound). A bound of
// 0 ms expires before the child is even looked at, so these are deterministic and need no root.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "holders/ns_unmount.h"
#include "holders/procfs.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

TEST(HelperBoundsTest, ReadingAnotherNamespacesMountTableIsBounded) {
  std::unique_ptr<ProcFs> procfs = NewRealProcFs(std::chrono::milliseconds(0));
  std::string text;
  EXPECT_THAT(procfs->ReadMountInfoOfNamespaceFile("/proc/self/ns/mnt", &text),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("reading the mount table of the namespace at /proc/self/ns/mnt")));
}

TEST(HelperBoundsTest, UnmountingInAnotherNamespaceIsBounded) {
  struct stat st;
  ASSERT_EQ(::stat("/proc/self/ns/mnt", &st), 0);
  std::unique_ptr<NamespaceUnmounter> unmounter =
      NewRealNamespaceUnmounter(std::chrono::milliseconds(0));
  // Our own namespace, a path that does not exist and a mount id no mount has: nothing can be
  // unmounted even if the child got that far.
  EXPECT_THAT(unmounter->Unmount(::getpid(), 0, st.st_ino, -1, "/rbdcsi-no-such-dir/mnt"),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("unmounting /rbdcsi-no-such-dir/mnt in mount namespace")));
}

}  // namespace
}  // namespace rbdcsi
