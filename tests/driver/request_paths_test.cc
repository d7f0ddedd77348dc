// ResolveRequestPath on a real directory tree: paths lie under the kubelet directory and are
// reached without a symlink in any component.
#include "driver/request_paths.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class RequestPathsTest : public ::testing::Test {
 protected:
  RequestPathsTest() {
    fs::create_directories(kubelet() + "/plugins/rbd");
    fs::create_directories(kubelet() + "/state");
    fs::create_directories(dir_ / "outside");
    rules_.kubelet_dir = kubelet();
    rules_.protected_dirs = {kubelet() + "/state"};
  }
  std::string kubelet() const { return dir_ / "kubelet"; }

  absl::StatusOr<std::string> Resolve(const std::string& path, PathNeed need = PathNeed::kNone) {
    return ResolveRequestPath(rules_, path, "staging_target_path", need);
  }

  TempDir dir_{"paths"};
  PathRules rules_;
};

TEST_F(RequestPathsTest, PathsUnderTheKubeletDirectoryResolveToThemselves) {
  const std::string p = kubelet() + "/plugins/rbd/globalmount";
  EXPECT_THAT(Resolve(p, PathNeed::kParent), IsOkAndHolds(p));
  EXPECT_THAT(Resolve(kubelet() + "//plugins/rbd//globalmount/", PathNeed::kParent),
              IsOkAndHolds(p));
  EXPECT_THAT(Resolve(kubelet() + "/plugins/rbd", PathNeed::kPath),
              IsOkAndHolds(kubelet() + "/plugins/rbd"));
}

TEST_F(RequestPathsTest, PathsOutsideOrAtTheKubeletDirectoryAreRefused) {
  for (const std::string& p : {std::string("/etc"), std::string("/proc/self/cwd"), std::string("/"),
                               dir_ / "outside", kubelet(), kubelet() + "-other/x"}) {
    EXPECT_THAT(Resolve(p), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("does not lie under the kubelet directory")))
        << p;
  }
}

TEST_F(RequestPathsTest, ASymlinkInAnyComponentIsRefused) {
  fs::create_directory_symlink(dir_ / "outside", kubelet() + "/plugins/link-out");
  fs::create_directory_symlink(kubelet() + "/plugins/rbd", kubelet() + "/plugins/link-in");
  fs::create_symlink(dir_ / "nowhere", kubelet() + "/plugins/dangling");
  fs::create_directory_symlink("/etc", kubelet() + "/plugins/etc");
  for (const std::string& p :
       {kubelet() + "/plugins/link-out", kubelet() + "/plugins/link-in",
        kubelet() + "/plugins/link-in/globalmount", kubelet() + "/plugins/link-out/x/y",
        kubelet() + "/plugins/dangling", kubelet() + "/plugins/etc"}) {
    for (PathNeed need : {PathNeed::kPath, PathNeed::kParent, PathNeed::kNone}) {
      EXPECT_THAT(Resolve(p, need),
                  StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("symbolic link")))
          << p;
    }
  }
}

TEST_F(RequestPathsTest, TheKubeletDirectoryMayItselfBeASymlink) {
  fs::create_directory_symlink(kubelet(), dir_ / "kubelet-link");
  rules_.kubelet_dir = dir_ / "kubelet-link";
  const std::string real = fs::canonical(kubelet()).string();
  EXPECT_THAT(Resolve(dir_ / "kubelet-link/plugins/rbd/gm", PathNeed::kParent),
              IsOkAndHolds(real + "/plugins/rbd/gm"));
  EXPECT_THAT(Resolve(kubelet() + "/plugins/rbd/gm", PathNeed::kParent),
              IsOkAndHolds(real + "/plugins/rbd/gm"));
}

TEST_F(RequestPathsTest, ProtectedDirectoriesAreRefusedEvenUnderTheKubeletDirectory) {
  for (const std::string& p : {kubelet() + "/state", kubelet() + "/state/volumes/x"}) {
    EXPECT_THAT(Resolve(p),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("which is not the CO's")))
        << p;
  }
  rules_.kubelet_dir = "/";
  for (const char* p : {"/proc/1/root", "/sys/kernel", "/dev/shm/x"}) {
    EXPECT_THAT(Resolve(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lies in")))
        << p;
  }
}

TEST_F(RequestPathsTest, WhatMustExistDependsOnTheCall) {
  const std::string deep = kubelet() + "/pods/p1/volumes/mount";
  EXPECT_THAT(Resolve(deep, PathNeed::kNone), IsOkAndHolds(deep));
  EXPECT_THAT(
      Resolve(deep, PathNeed::kParent),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a directory that exists")));
  EXPECT_THAT(Resolve(kubelet() + "/plugins/rbd/gm", PathNeed::kPath),
              StatusIs(absl::StatusCode::kNotFound));
  { std::ofstream(kubelet() + "/plugins/file") << "x"; }
  EXPECT_THAT(Resolve(kubelet() + "/plugins/file/gm", PathNeed::kParent),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a directory")));
  EXPECT_THAT(Resolve(kubelet() + "/plugins/file/gm", PathNeed::kNone),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a directory")));
}

TEST_F(RequestPathsTest, VerifyResolvedCatchesASymlinkSwappedIn) {
  const std::string p = kubelet() + "/plugins/rbd/gm";
  fs::create_directory(p);
  EXPECT_THAT(VerifyResolved(rules_, p, "staging_target_path"), IsOk());
  fs::remove(p);
  fs::create_directory_symlink("/etc", p);
  EXPECT_THAT(VerifyResolved(rules_, p, "staging_target_path"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symbolic link")));
}

}  // namespace
}  // namespace rbdcsi
