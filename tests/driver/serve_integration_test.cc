// Starts the real rbdcsi binary on a temporary socket and talks to it like a CO would.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "base/version.h"
#include "csi.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

class ServeTest : public ::testing::Test {
 protected:
  std::string socket() const { return dir_ / "sock/csi.sock"; }
  std::vector<std::string> ServeArgv(const std::string& extra_flag = "",
                                     const std::string& state = "state",
                                     const std::string& sock = "") const {
    std::vector<std::string> argv = {
        RBDCSI_BINARY, "serve",      "--endpoint",  "unix://" + (sock.empty() ? socket() : sock),
        "--nodeid",    "node-a",     "--state-dir", dir_ / state,
        "--data-dir",  dir_ / "data"};
    if (!extra_flag.empty()) argv.push_back(extra_flag);
    return argv;
  }
  std::shared_ptr<grpc::Channel> Connect() const {
    return grpc::CreateChannel("unix:" + socket(), grpc::InsecureChannelCredentials());
  }
  bool Serving() const {
    struct stat st {};
    if (stat(socket().c_str(), &st) != 0) return false;
    auto stub = csi::v1::Identity::NewStub(Connect());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    csi::v1::ProbeResponse resp;
    return stub->Probe(&ctx, csi::v1::ProbeRequest(), &resp).ok();
  }

  TempDir dir_{"serve"};
};

TEST_F(ServeTest, AnswersEveryIdentityRpcAndStopsCleanlyOnSigterm) {
  ChildProcess server(ServeArgv(), dir_.path());
  ASSERT_TRUE(WaitFor([&] { return Serving(); }, std::chrono::seconds(20))) << server.Stderr();

  struct stat st {};
  ASSERT_EQ(stat(socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  auto stub = csi::v1::Identity::NewStub(Connect());
  {
    grpc::ClientContext ctx;
    csi::v1::GetPluginInfoResponse resp;
    ASSERT_TRUE(stub->GetPluginInfo(&ctx, {}, &resp).ok());
    EXPECT_EQ(resp.name(), "rbd.rbdcsi.dev");
    EXPECT_EQ(resp.vendor_version(), kVersion);
  }
  {
    grpc::ClientContext ctx;
    csi::v1::GetPluginCapabilitiesResponse resp;
    ASSERT_TRUE(stub->GetPluginCapabilities(&ctx, {}, &resp).ok());
    bool online_expansion = false;
    for (const auto& cap : resp.capabilities()) {
      online_expansion |=
          cap.volume_expansion().type() == csi::v1::PluginCapability::VolumeExpansion::ONLINE;
    }
    EXPECT_TRUE(online_expansion);
  }
  {
    grpc::ClientContext ctx;
    csi::v1::ProbeResponse resp;
    ASSERT_TRUE(stub->Probe(&ctx, {}, &resp).ok());
    EXPECT_TRUE(resp.has_ready());
    EXPECT_TRUE(resp.ready().value());
  }

  server.Signal(SIGTERM);
  std::optional<int> code = server.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << server.Stderr();
  // What must survive a restart survives; only the socket goes.
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "state"));
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "data"));
  EXPECT_FALSE(std::filesystem::exists(socket()));
  EXPECT_THAT(server.Stderr(), HasSubstr("method=Probe code=OK"));
}

TEST_F(ServeTest, ProbeIsNotReadyWhenTheStateDirectoryIsUnusable) {
  ChildProcess server(ServeArgv(), dir_.path());
  ASSERT_TRUE(WaitFor([&] { return Serving(); }, std::chrono::seconds(20))) << server.Stderr();
  std::filesystem::remove_all(dir_ / "state");
  auto stub = csi::v1::Identity::NewStub(Connect());
  grpc::ClientContext ctx;
  csi::v1::ProbeResponse resp;
  ASSERT_TRUE(stub->Probe(&ctx, {}, &resp).ok());
  EXPECT_FALSE(resp.ready().value());
}

TEST_F(ServeTest, SecondServerOnTheSameSocketFailsClearly) {
  ChildProcess first(ServeArgv(), dir_.path());
  ASSERT_TRUE(WaitFor([&] { return Serving(); }, std::chrono::seconds(20))) << first.Stderr();
  ChildProcess second(ServeArgv("", "state2"), dir_.path());
  std::optional<int> code = second.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(second.Stderr(), HasSubstr("another server is already listening on " + socket()));
  EXPECT_TRUE(Serving());  // the first one is unharmed
}

// Two servers on one state directory would undo each other's stages: the second is refused for
// as long as the first lives, and a crashed first one does not block a restart.
TEST_F(ServeTest, SecondServerOnTheSameStateDirectoryIsRefused) {
  ChildProcess first(ServeArgv(), dir_.path());
  ASSERT_TRUE(WaitFor([&] { return Serving(); }, std::chrono::seconds(20))) << first.Stderr();
  const std::string other_socket = dir_ / "sock/other.sock";
  ChildProcess second(ServeArgv("", "state", other_socket), dir_.path());
  std::optional<int> code = second.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(second.Stderr(), HasSubstr("--state-dir " + (dir_ / "state") +
                                         " is in use by another rbdcsi serve (pid " +
                                         std::to_string(first.pid()) + ")"));
  EXPECT_FALSE(std::filesystem::exists(other_socket));
  EXPECT_TRUE(Serving());

  first.Signal(SIGKILL);
  first.Wait(std::chrono::seconds(10));
  ChildProcess restarted(ServeArgv("", "state", other_socket), dir_.path());
  EXPECT_TRUE(
      WaitFor([&] { return std::filesystem::exists(other_socket); }, std::chrono::seconds(20)))
      << restarted.Stderr();
}

TEST_F(ServeTest, StaleSocketIsReplacedButAnOrdinaryFileIsNot) {
  {
    ChildProcess crashed(ServeArgv(), dir_.path());
    ASSERT_TRUE(WaitFor([&] { return Serving(); }, std::chrono::seconds(20)));
    crashed.Signal(SIGKILL);
    crashed.Wait(std::chrono::seconds(10));
  }
  ASSERT_TRUE(std::filesystem::exists(socket()));  // left behind by the crash
  {
    ChildProcess restarted(ServeArgv(), dir_.path());
    EXPECT_TRUE(WaitFor([&] { return Serving(); }, std::chrono::seconds(20))) << restarted.Stderr();
  }
  std::filesystem::remove(socket());
  { std::ofstream(socket()) << "not a socket"; }
  ChildProcess refused(ServeArgv(), dir_.path());
  std::optional<int> code = refused.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(refused.Stderr(), HasSubstr("is not a socket"));
  EXPECT_EQ(ReadFileOrEmpty(socket()), "not a socket");
}

// gRPC cannot decode a string that is not UTF-8 and used to answer INTERNAL.
TEST_F(ServeTest, AnUndecodableRequestIsInvalidArgumentAndTheServerServesOn) {
  ChildProcess server(ServeArgv(), dir_.path());
  ASSERT_TRUE(WaitFor([&] { return Serving(); }, std::chrono::seconds(20))) << server.Stderr();
  auto node = csi::v1::Node::NewStub(Connect());
  csi::v1::NodeUnstageVolumeRequest req;
  req.set_volume_id("rbd/\xff\xfe");
  req.set_staging_target_path("/tmp/rbdcsi-none/\xc3");
  grpc::ClientContext ctx;
  csi::v1::NodeUnstageVolumeResponse resp;
  grpc::Status st = node->NodeUnstageVolume(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("not UTF-8"));
  EXPECT_TRUE(Serving());
}

TEST_F(ServeTest, BadFlagsExitWithUsageCode) {
  std::vector<std::string> argv = ServeArgv();
  argv[3] = "tcp://127.0.0.1:1";
  ChildProcess bad(argv, dir_.path());
  std::optional<int> code = bad.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_THAT(bad.Stderr(), HasSubstr("only unix sockets"));
}

}  // namespace
}  // namespace rbdcsi
