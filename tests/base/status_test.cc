#include "base/status.h"

#include <cerrno>

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

TEST(ErrnoToStatusTest, MapsCodesAndNamesTheCause) {
  EXPECT_THAT(ErrnoToStatus(EBUSY, "unmapping /dev/rbd0"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "unmapping /dev/rbd0: Device or resource busy (EBUSY)"));
  EXPECT_THAT(ErrnoToStatus(ENOENT, "x"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("ENOENT")));
  EXPECT_THAT(ErrnoToStatus(EEXIST, "x"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("x")));
  EXPECT_THAT(ErrnoToStatus(EACCES, "x"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("x")));
  EXPECT_THAT(ErrnoToStatus(EIO, "x"), StatusIs(absl::StatusCode::kInternal, HasSubstr("EIO")));
}

TEST(ErrnoToStatusTest, BusyIsRecognisedWhateverItsOrigin) {
  EXPECT_TRUE(IsBusy(ErrnoToStatus(EBUSY, "x")));
  EXPECT_TRUE(IsBusy(BusyError("rbd: unmap failed: (16) Device or resource busy")));
  EXPECT_FALSE(IsBusy(ErrnoToStatus(EIO, "x")));
  EXPECT_FALSE(IsBusy(absl::FailedPreconditionError("not busy")));
  EXPECT_TRUE(IsBusy(Annotate(BusyError("held"), "volume v1")));
}

TEST(AnnotateTest, PrefixesAndKeepsCode) {
  EXPECT_THAT(Annotate(absl::NotFoundError("no image"), "volume v1"),
              StatusIs(absl::StatusCode::kNotFound, "volume v1: no image"));
  EXPECT_THAT(Annotate(absl::OkStatus(), "volume v1"), IsOk());
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status UseMacros(int x, int* out) {
  RETURN_IF_ERROR(x < 0 ? absl::OutOfRangeError("negative") : absl::OkStatus());
  ASSIGN_OR_RETURN(int half, Half(x));
  *out = half;
  return absl::OkStatus();
}

TEST(MacrosTest, PropagateErrorsAndValues) {
  int out = 0;
  EXPECT_THAT(UseMacros(8, &out), IsOk());
  EXPECT_EQ(out, 4);
  EXPECT_THAT(UseMacros(3, &out), StatusIs(absl::StatusCode::kInvalidArgument, "odd"));
  EXPECT_THAT(UseMacros(-2, &out), StatusIs(absl::StatusCode::kOutOfRange, "negative"));
  EXPECT_EQ(out, 4);
}

}  // namespace
}  // namespace rbdcsi
