#include "driver/rpc.h"

#include <thread>

#include "csi.pb.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::AllOf;
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

  // A field of a newer CSI version, unknown to this build, might be a secret: never logged.
  request.GetReflection()->MutableUnknownFields(&request)->AddLengthDelimited(99, "NEWSECRET");
  EXPECT_THAT(RedactedSummary(request), Not(HasSubstr("NEWSECRET")));

  csi::v1::CreateSnapshotRequest nested;  // secrets inside another request type
  (*nested.mutable_secrets())["k"] = "topsecret";
  EXPECT_THAT(RedactedSummary(nested), Not(HasSubstr("topsecret")));
}

// Found by hostile_requests_test: a secret's value inside another field (a path, a mount flag,
// a context value) was logged with the request.
TEST(RedactedSummaryTest, RedactsSecretValuesInEveryOtherField) {
  const std::string odd = "S3NT\t\xc3\xa9";  // redacted on raw bytes, before the text escapes
  csi::v1::NodeStageVolumeRequest request;
  request.set_volume_id("rbd/pvc-1");
  request.set_staging_target_path("/staging/S3NT1NEL/x");
  request.mutable_volume_capability()->mutable_mount()->add_mount_flags("S3NT1NEL");
  (*request.mutable_volume_context())["monitors"] = "a" + odd + "b";
  (*request.mutable_secrets())["userKey"] = "S3NT1NEL";
  (*request.mutable_secrets())["other"] = odd;
  const std::string summary = RedactedSummary(request);
  EXPECT_THAT(summary, Not(HasSubstr("S3NT")));
  EXPECT_THAT(summary, Not(HasSubstr("\\303\\251")));
  EXPECT_THAT(summary, AllOf(HasSubstr("/staging/<redacted>/x"), HasSubstr("a<redacted>b")));
  EXPECT_EQ(request.staging_target_path(), "/staging/S3NT1NEL/x");  // the request is untouched
}

TEST(RunRpcTest, ConvertsCodesOneToOne) {
  csi::v1::ProbeRequest request;
  EXPECT_TRUE(RunRpc(nullptr, "Probe", request, [] { return absl::OkStatus(); }).ok());
  grpc::Status st = RunRpc(nullptr, "Probe", request,
                           [] { return absl::FailedPreconditionError("device held"); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(), "device held");
  st =
      RunRpc(nullptr, "Probe", request, []() -> absl::Status { throw std::runtime_error("boom"); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(st.error_message(), HasSubstr("boom"));
}

TEST(RunRpcTest, NoSecretOfTheRequestLeavesInAnError) {
  csi::v1::NodeStageVolumeRequest request;
  request.set_volume_id("pvc-1");
  (*request.mutable_secrets())["userID"] = "-u";
  (*request.mutable_secrets())["userKey"] = "k\t\xc3\xa9y";
  grpc::Status st = RunRpc(nullptr, "NodeStageVolume", request, [] {
    return absl::InternalError("rbd: user -u, key 'k\t\xc3\xa9y' rejected");
  });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(st.error_message(), "rbd: user <redacted>, key '<redacted>' rejected");
  EXPECT_THAT(SecretValues(request), ::testing::UnorderedElementsAre("-u", "k\t\xc3\xa9y"));
}

TEST(RunRpcTest, OversizedOrNonUtf8FieldsAreRefusedBeforeTheHandler) {
  struct Case {
    std::function<void(csi::v1::NodeStageVolumeRequest&)> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { (*r.mutable_volume_context())["monitors"] = std::string(200 * 1024, 'm'); },
       "volume_context.value is longer than 4096 bytes"},
      {[](auto& r) { r.set_staging_target_path("/a/\xff\xfe"); },
       "staging_target_path is not valid UTF-8"},
      {[](auto& r) { (*r.mutable_secrets())["userKey"] = "SENTINEL\xc3"; },
       "secrets.value is not valid UTF-8"},
      {[](auto& r) {
         r.mutable_volume_capability()->mutable_mount()->add_mount_flags(std::string(5000, 'f'));
       },
       "volume_capability.mount.mount_flags is longer"},
      {[](auto& r) {
         for (int i = 0; i < 200; ++i) (*r.mutable_volume_context())[std::to_string(i)] = "v";
       },
       "volume_context has more than 128 entries"},
  };
  for (const Case& c : cases) {
    csi::v1::NodeStageVolumeRequest request;
    request.set_volume_id("pvc-1");
    c.change(request);
    bool ran = false;
    grpc::Status st = RunRpc(nullptr, "NodeStageVolume", request, [&] {
      ran = true;
      return absl::OkStatus();
    });
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_THAT(st.error_message(), AllOf(HasSubstr(c.message), Not(HasSubstr("SENTINEL"))));
    EXPECT_FALSE(ran) << c.message;
  }
}

}  // namespace
}  // namespace rbdcsi

namespace rbdcsi {
namespace {

TEST(CallTrackerTest, DrainWaitsForCallsInFlightAndRefusesNewOnes) {
  CallTracker tracker;
  ASSERT_TRUE(tracker.Enter());
  std::thread finisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    tracker.Exit();
  });
  EXPECT_TRUE(tracker.Drain(std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  finisher.join();
  EXPECT_FALSE(tracker.Enter());
  csi::v1::ProbeRequest request;
  bool ran = false;
  grpc::Status st = RunRpc(&tracker, "Probe", request, [&] {
    ran = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(ran);
}

TEST(CallTrackerTest, DrainGivesUpAtTheDeadline) {
  CallTracker tracker;
  ASSERT_TRUE(tracker.Enter());
  EXPECT_FALSE(tracker.Drain(std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
  tracker.Exit();
}

}  // namespace
}  // namespace rbdcsi
