#include "driver/rpc.h"

#include "csi.pb.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RedactedSummaryTest, RemovesSecretsAtAnyDepth) {
  csi::v1::NodeStageVolumeRequest request;
  request.set_volume_id("pvc-1");
  request.set_staging_target_path("/staging/pvc-1");
  (*request.mutable_secrets())["key"] = "AQBsupersecretkey==";
  (*request.mutable_volume_context())["pool"] = "rbd";
  std::string summary = RedactedSummary(request);
  EXPECT_THAT(summary, HasSubstr("pvc-1"));
  EXPECT_THAT(summary, HasSubstr("rbd"));
  EXPECT_THAT(summary, Not(HasSubstr("supersecret")));
  EXPECT_EQ(request.secrets().at("key"), "AQBsupersecretkey==");  // the request is untouched

  csi::v1::CreateSnapshotRequest nested;  // secrets inside another request type
  (*nested.mutable_secrets())["k"] = "topsecret";
  EXPECT_THAT(RedactedSummary(nested), Not(HasSubstr("topsecret")));
}

TEST(RunRpcTest, ConvertsCodesOneToOne) {
  csi::v1::ProbeRequest request;
  EXPECT_TRUE(RunRpc("Probe", request, [] { return absl::OkStatus(); }).ok());
  grpc::Status st =
      RunRpc("Probe", request, [] { return absl::FailedPreconditionError("device held"); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(), "device held");
  st = RunRpc("Probe", request, []() -> absl::Status { throw std::runtime_error("boom"); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(st.error_message(), HasSubstr("boom"));
}

}  // namespace
}  // namespace rbdcsi
