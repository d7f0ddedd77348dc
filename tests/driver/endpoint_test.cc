#include "driver/endpoint.h"

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

TEST(ParseUnixEndpointTest, AcceptsUnixForms) {
  EXPECT_EQ(*ParseUnixEndpoint("unix:///csi/csi.sock"), "/csi/csi.sock");
  EXPECT_EQ(*ParseUnixEndpoint("unix:/csi/csi.sock"), "/csi/csi.sock");
  EXPECT_EQ(*ParseUnixEndpoint("unix:csi.sock"), "csi.sock");
  EXPECT_EQ(*ParseUnixEndpoint("/var/lib/kubelet/plugins/rbd/csi.sock"),
            "/var/lib/kubelet/plugins/rbd/csi.sock");
}

TEST(ParseUnixEndpointTest, RejectsOtherSchemesClearly) {
  EXPECT_THAT(ParseUnixEndpoint("tcp://127.0.0.1:10000"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("only unix sockets")));
  EXPECT_THAT(ParseUnixEndpoint("csi.sock"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("only unix sockets")));
  EXPECT_THAT(ParseUnixEndpoint("unix://host/csi.sock"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute path")));
  EXPECT_THAT(ParseUnixEndpoint("unix:"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no socket path")));
  EXPECT_THAT(ParseUnixEndpoint("unix:///" + std::string(200, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the limit is 107")));
}

TEST(ValidateDriverNameTest, FollowsCsiNameRules) {
  EXPECT_THAT(ValidateDriverName("rbd.rbdcsi.dev"), IsOk());
  EXPECT_THAT(ValidateDriverName("a"), IsOk());
  EXPECT_THAT(ValidateDriverName("my_driver-1.example.com"), IsOk());
  EXPECT_THAT(ValidateDriverName(std::string(63, 'a')), IsOk());
  for (const char* bad : {"", "-rbd", "rbd.", "rbd csi", "rbd/csi", "rbd\xc3\xa9"}) {
    EXPECT_THAT(ValidateDriverName(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a valid CSI name")))
        << bad;
  }
  EXPECT_FALSE(ValidateDriverName(std::string(64, 'a')).ok());
}

}  // namespace
}  // namespace rbdcsi
