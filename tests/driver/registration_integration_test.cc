// `rbdcsi serve --registration-dir`: the real binary registers itself the way the kubelet's
// plugin watcher expects, with no registrar sidecar.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>

#include "csi.grpc.pb.h"
#include "gtest/gtest.h"
#include "pluginregistration.grpc.pb.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RegistrationServeTest : public ::testing::Test {
 protected:
  std::string csi_socket() const { return dir_ / "plugins/rbd/csi.sock"; }
  std::string registry() const { return dir_ / "plugins_registry"; }
  std::string reg_socket() const { return registry() + "/rbd.rbdcsi.dev-reg.sock"; }
  std::vector<std::string> ServeArgv(const std::string& registration_dir) const {
    return {RBDCSI_BINARY, "serve",       "--endpoint",         "unix://" + csi_socket(),
            "--nodeid",    "node-a",      "--state-dir",        dir_ / "state",
            "--data-dir",  dir_ / "data", "--registration-dir", registration_dir};
  }
  std::unique_ptr<pluginregistration::Registration::Stub> RegStub() const {
    return pluginregistration::Registration::NewStub(
        grpc::CreateChannel("unix:" + reg_socket(), grpc::InsecureChannelCredentials()));
  }
  bool Registering() const {
    if (!std::filesystem::exists(reg_socket())) return false;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    pluginregistration::PluginInfo info;
    return RegStub()->GetInfo(&ctx, {}, &info).ok();
  }

  TempDir dir_{"regserve"};
};

// What the kubelet does: GetInfo, dial the endpoint it names (NodeGetInfo), report success.
TEST_F(RegistrationServeTest, KubeletStyleRegistrationReachesTheCsiSocket) {
  ChildProcess server(ServeArgv(registry()), dir_.path());
  ASSERT_TRUE(WaitFor([&] { return Registering(); }, std::chrono::seconds(20))) << server.Stderr();

  auto reg = RegStub();
  pluginregistration::PluginInfo info;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(reg->GetInfo(&ctx, {}, &info).ok());
  }
  EXPECT_EQ(info.type(), "CSIPlugin");
  EXPECT_EQ(info.name(), "rbd.rbdcsi.dev");
  EXPECT_EQ(info.endpoint(), csi_socket());
  EXPECT_THAT(info.supported_versions(), ElementsAre("1.0.0"));

  auto node = csi::v1::Node::NewStub(
      grpc::CreateChannel("unix:" + info.endpoint(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    csi::v1::NodeGetInfoResponse resp;
    ASSERT_TRUE(node->NodeGetInfo(&ctx, {}, &resp).ok());
    EXPECT_EQ(resp.node_id(), "node-a");
  }
  {
    grpc::ClientContext ctx;
    pluginregistration::RegistrationStatus status;
    status.set_plugin_registered(true);
    pluginregistration::RegistrationStatusResponse resp;
    ASSERT_TRUE(reg->NotifyRegistrationStatus(&ctx, status, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    pluginregistration::RegistrationStatus status;
    status.set_plugin_registered(false);
    status.set_error("version 0.3 not supported");
    pluginregistration::RegistrationStatusResponse resp;
    ASSERT_TRUE(reg->NotifyRegistrationStatus(&ctx, status, &resp).ok());
  }

  server.Signal(SIGTERM);
  std::optional<int> code = server.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << server.Stderr();
  EXPECT_FALSE(std::filesystem::exists(reg_socket()));  // the kubelet deregisters the driver
  EXPECT_FALSE(std::filesystem::exists(csi_socket()));
  EXPECT_THAT(server.Stderr(), HasSubstr("kubelet registered driver rbd.rbdcsi.dev"));
  EXPECT_THAT(server.Stderr(), HasSubstr("kubelet refused to register driver rbd.rbdcsi.dev: "
                                         "version 0.3 not supported"));
}

TEST_F(RegistrationServeTest, OffByDefault) {
  std::vector<std::string> argv = ServeArgv(registry());
  argv.resize(argv.size() - 2);
  ChildProcess server(argv, dir_.path());
  ASSERT_TRUE(
      WaitFor([&] { return std::filesystem::exists(csi_socket()); }, std::chrono::seconds(20)))
      << server.Stderr();
  EXPECT_FALSE(std::filesystem::exists(registry()));
}

TEST_F(RegistrationServeTest, RelativeRegistrationDirIsABadFlag) {
  ChildProcess bad(ServeArgv("plugins_registry"), dir_.path());
  std::optional<int> code = bad.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_THAT(bad.Stderr(), HasSubstr("--registration-dir"));
}

}  // namespace
}  // namespace rbdcsi
