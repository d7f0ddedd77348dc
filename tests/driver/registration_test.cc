// The kubelet plugin-registration service, served on a real unix socket and called through
// gRPC the way the kubelet calls it.
#include "driver/registration.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RegistrationSocketPathTest, NamesTheSocketAfterTheDriver) {
  EXPECT_EQ(*RegistrationSocketPath("/var/lib/kubelet/plugins_registry", "rbd.rbdcsi.dev"),
            "/var/lib/kubelet/plugins_registry/rbd.rbdcsi.dev-reg.sock");
  EXPECT_EQ(*RegistrationSocketPath("/r/", "d"), "/r/d-reg.sock");
  EXPECT_EQ(*RegistrationSocketPath("/", "d"), "/d-reg.sock");
}

TEST(RegistrationSocketPathTest, RefusesRelativeAndOverlongPaths) {
  EXPECT_THAT(RegistrationSocketPath("plugins_registry", "d"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(RegistrationSocketPath("/" + std::string(120, 'x'), "d"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

class RegistrationTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_ / "plugins_registry/rbd.rbdcsi.dev-reg.sock"; }
  std::unique_ptr<pluginregistration::Registration::Stub> Stub() const {
    return pluginregistration::Registration::NewStub(
        grpc::CreateChannel("unix:" + socket(), grpc::InsecureChannelCredentials()));
  }

  TempDir dir_{"registration"};
  KubeletRegistration registration_{socket(),
                                    {"rbd.rbdcsi.dev", "/var/lib/kubelet/plugins/rbd/csi.sock"}};
};

TEST_F(RegistrationTest, GetInfoDescribesTheCsiPlugin) {
  ASSERT_THAT(registration_.Start(), IsOk());
  struct stat st {};
  ASSERT_EQ(stat(socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));

  grpc::ClientContext ctx;
  pluginregistration::PluginInfo info;
  ASSERT_TRUE(Stub()->GetInfo(&ctx, {}, &info).ok());
  EXPECT_EQ(info.type(), "CSIPlugin");
  EXPECT_EQ(info.name(), "rbd.rbdcsi.dev");
  EXPECT_EQ(info.endpoint(), "/var/lib/kubelet/plugins/rbd/csi.sock");
  EXPECT_THAT(info.supported_versions(), ElementsAre("1.0.0"));
}

TEST_F(RegistrationTest, RemembersTheKubeletsVerdict) {
  ASSERT_THAT(registration_.Start(), IsOk());
  EXPECT_EQ(registration_.service().registered(), std::nullopt);
  auto stub = Stub();
  for (bool registered : {false, true}) {
    grpc::ClientContext ctx;
    pluginregistration::RegistrationStatus status;
    status.set_plugin_registered(registered);
    if (!registered) status.set_error("plugin name taken");
    pluginregistration::RegistrationStatusResponse resp;
    ASSERT_TRUE(stub->NotifyRegistrationStatus(&ctx, status, &resp).ok());
    EXPECT_EQ(registration_.service().registered(), registered);
  }
}

TEST_F(RegistrationTest, StopRemovesTheSocketSoTheKubeletDeregisters) {
  ASSERT_THAT(registration_.Start(), IsOk());
  registration_.Stop();
  EXPECT_FALSE(std::filesystem::exists(socket()));
}

}  // namespace
}  // namespace rbdcsi
