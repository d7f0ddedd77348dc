#include "cmd/flags.h"

#include <unistd.h>

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ServeFlags> Parse(std::vector<std::string> args) {
  CLI::App app;
  ServeFlags flags;
  AddServeFlags(app, flags);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector reversed
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  absl::Status st = ValidateServeFlags(flags);
  if (!st.ok()) return st;
  return flags;
}

TEST(ServeFlagsTest, DefaultsAreUsable) {
  auto flags = Parse({});
  ASSERT_THAT(flags, IsOk());
  EXPECT_EQ(flags->socket_path, "/csi/csi.sock");
  EXPECT_EQ(flags->driver_name, "rbd.rbdcsi.dev");
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  EXPECT_EQ(flags->node_id, host);
  EXPECT_EQ(flags->log_format, "text");
}

TEST(ServeFlagsTest, TakesEveryFlag) {
  auto flags = Parse({"--endpoint", "unix:///run/x/csi.sock", "--nodeid", "n1", "--drivername",
                      "rbd.example.com", "--state-dir", "/s", "--data-dir", "/d", "--log-level",
                      "debug", "--log-format", "json", "--grace-period", "3"});
  ASSERT_THAT(flags, IsOk());
  EXPECT_EQ(flags->socket_path, "/run/x/csi.sock");
  EXPECT_EQ(flags->node_id, "n1");
  EXPECT_EQ(flags->driver_name, "rbd.example.com");
  EXPECT_EQ(flags->state_dir, "/s");
  EXPECT_EQ(flags->data_dir, "/d");
  EXPECT_EQ(flags->log_level, "debug");
  EXPECT_EQ(flags->log_format, "json");
  EXPECT_EQ(flags->grace_seconds, 3);
}

TEST(ServeFlagsTest, UnstageAndKrbdFlags) {
  auto flags = Parse({"--unstage-wait", "2.5", "--reclaim-stale-mounts", "node_exporter,fluent-bit",
                      "--rbd-program", "/usr/local/bin/rbd", "--key-dir", "/run/k"});
  ASSERT_THAT(flags, IsOk());
  EXPECT_DOUBLE_EQ(flags->unstage_wait_seconds, 2.5);
  EXPECT_EQ(flags->reclaim_stale_mounts, (std::vector<std::string>{"node_exporter", "fluent-bit"}));
  EXPECT_EQ(flags->rbd_program, "/usr/local/bin/rbd");
  EXPECT_EQ(flags->key_dir, "/run/k");
  auto defaults = Parse({});
  ASSERT_THAT(defaults, IsOk());
  EXPECT_TRUE(defaults->reclaim_stale_mounts.empty());  // reclaiming is opt-in
  EXPECT_DOUBLE_EQ(defaults->unstage_wait_seconds, 5);
  EXPECT_THAT(Parse({"--unstage-wait", "600"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--unstage-wait")));
  EXPECT_THAT(Parse({"--key-dir", "keys"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--key-dir")));
  EXPECT_THAT(Parse({"--no-node", "--no-controller"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nothing to serve")));
}

TEST(ServeFlagsTest, RejectsBadValuesNamingTheFlag) {
  EXPECT_THAT(Parse({"--endpoint", "tcp://0:1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--endpoint")));
  EXPECT_THAT(Parse({"--drivername", "bad name"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--drivername")));
  EXPECT_THAT(Parse({"--state-dir", "relative"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--state-dir")));
  EXPECT_THAT(Parse({"--log-format", "xml"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--log-format")));
  EXPECT_THAT(Parse({"--no-such-flag"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no-such-flag")));
  EXPECT_THAT(Parse({"--nodeid", std::string(129, 'n')}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--nodeid")));
}

TEST(ServeFlagsTest, RegistrationIsOffByDefaultAndNamesItsSocket) {
  auto off = Parse({});
  ASSERT_THAT(off, IsOk());
  EXPECT_EQ(off->registration_socket_path, "");
  auto on = Parse({"--registration-dir", "/var/lib/kubelet/plugins_registry",
                   "--kubelet-registration-path", "/var/lib/kubelet/plugins/rbd/csi.sock"});
  ASSERT_THAT(on, IsOk());
  EXPECT_EQ(on->registration_socket_path,
            "/var/lib/kubelet/plugins_registry/rbd.rbdcsi.dev-reg.sock");
  EXPECT_EQ(on->kubelet_registration_path, "/var/lib/kubelet/plugins/rbd/csi.sock");
  EXPECT_THAT(Parse({"--registration-dir", "registry"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--registration-dir")));
  EXPECT_THAT(
      Parse({"--registration-dir", "/r", "--kubelet-registration-path", "csi.sock"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--kubelet-registration-path")));
}

}  // namespace
}  // namespace rbdcsi
