// The CRI namer against an in-process runtime that serves only the older runtime.v1alpha2 (as
// containerd 1.6 does for kubelet 1.20), or runtime.v1, on a real unix socket.
#include "driver/cri_namer.h"

#include <atomic>

#include "cri.grpc.pb.h"
#include "cri_v1alpha2.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

constexpr char kId[] = "3f2a9c7f19550b1e2d3c4a5b6c7d8e9f00112233445566778899aabbccddeeff";

grpc::Status Answer(const runtime::v1::ContainerStatusRequest& request,
                    runtime::v1::ContainerStatusResponse* response, std::atomic<int>& calls) {
  ++calls;
  if (request.container_id() != kId) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such");
  auto* status = response->mutable_status();
  status->set_id(kId);
  status->mutable_metadata()->set_name("node-exporter");
  (*status->mutable_labels())["io.kubernetes.pod.namespace"] = "monitoring";
  (*status->mutable_labels())["io.kubernetes.pod.name"] = "node-exporter-x7k2p";
  (*status->mutable_labels())["io.kubernetes.container.name"] = "node-exporter";
  return grpc::Status::OK;
}

// A runtime serving ContainerStatus in one CRI version: runtime::v1 or runtime::v1alpha2.
template <typename Service>
class FakeRuntime final : public Service {
 public:
  grpc::Status ContainerStatus(grpc::ServerContext*,
                               const runtime::v1::ContainerStatusRequest* request,
                               runtime::v1::ContainerStatusResponse* response) override {
    return Answer(*request, response, calls);
  }
  std::atomic<int> calls{0};
};
using V1alpha2Runtime = FakeRuntime<runtime::v1alpha2::RuntimeService::Service>;
using V1Runtime = FakeRuntime<runtime::v1::RuntimeService::Service>;

class CriNamerTest : public ::testing::Test {
 protected:
  void Serve(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket(), grpc::InsecureServerCredentials());
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  std::string socket() const { return dir_ / "cri.sock"; }

  TempDir dir_{"cri"};
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(CriNamerTest, NamesThePodAndContainerThroughV1alpha2) {
  V1alpha2Runtime runtime;
  Serve(&runtime);
  CriContainerNamer namer(socket());
  ContainerIdentity id;
  id.container_id = kId;
  namer.Name(id);
  EXPECT_EQ(id.pod_namespace, "monitoring");
  EXPECT_EQ(id.pod_name, "node-exporter-x7k2p");
  EXPECT_EQ(id.container_name, "node-exporter");

  ContainerIdentity again;
  again.container_id = kId;
  namer.Name(again);
  EXPECT_EQ(again.pod_name, "node-exporter-x7k2p");
  EXPECT_EQ(runtime.calls, 1);  // remembered, not asked twice
}

TEST_F(CriNamerTest, NamesThroughV1) {
  V1Runtime runtime;
  Serve(&runtime);
  auto names = QueryContainerNames(
      grpc::CreateChannel("unix:" + socket(), grpc::InsecureChannelCredentials()), kId,
      std::chrono::seconds(5));
  ASSERT_THAT(names, IsOk());
  EXPECT_EQ(names->pod_namespace, "monitoring");
  EXPECT_EQ(names->container_name, "node-exporter");
}

TEST_F(CriNamerTest, UnknownContainerStaysUnnamed) {
  V1Runtime runtime;
  Serve(&runtime);
  CriContainerNamer namer(socket());
  ContainerIdentity id;
  id.container_id = "0123";
  namer.Name(id);
  EXPECT_EQ(id.pod_name, "");
  EXPECT_EQ(id.container_name, "");
}

TEST_F(CriNamerTest, DeadSocketIsAskedOnceAMinute) {
  CriContainerNamer namer(socket(), std::chrono::milliseconds(200));
  ContainerIdentity id;
  id.container_id = kId;
  namer.Name(id);
  EXPECT_EQ(id.pod_name, "");
  V1Runtime runtime;
  Serve(&runtime);  // too late: the namer keeps quiet for a while after a failure
  namer.Name(id);
  EXPECT_EQ(id.pod_name, "");
  EXPECT_EQ(runtime.calls, 0);
}

}  // namespace
}  // namespace rbdcsi
