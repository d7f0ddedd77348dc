// The test cluster fixture itself: what it promises in DIR/env works for a cephx user that is
// not the admin, with nothing but the monitor address and the key file.
#include <sys/stat.h>

#include <map>
#include <rados/librados.hpp>
#include <rbd/librbd.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "base/file_util.h"
#include "gtest/gtest.h"
#include "tests/ceph/cluster_bootstrap.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

std::map<std::string, std::string> Env() {
  std::map<std::string, std::string> env;
  absl::StatusOr<std::vector<std::string>> lines =
      ReadEnvFile(std::string(RBDCSI_CEPH_TEST_DIR) + "/env");
  EXPECT_THAT(lines, IsOk());
  if (!lines.ok()) return env;
  for (const std::string& line : *lines) {
    const size_t eq = line.find('=');
    env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

TEST(CephxKey, HasTheCryptoKeyLayout) {
  std::string raw;
  ASSERT_TRUE(absl::Base64Unescape(NewCephxKey(), &raw));
  ASSERT_EQ(raw.size(), 28u);
  EXPECT_EQ(raw[0], 1);    // AES
  EXPECT_EQ(raw[10], 16);  // secret length
  EXPECT_NE(NewCephxKey(), NewCephxKey());
}

TEST(TestCluster, UserFromEnvCreatesAndRemovesAnImage) {
  std::map<std::string, std::string> env = Env();
  ASSERT_FALSE(env["RBDCSI_CEPH_MON"].empty());
  struct stat st {};
  ASSERT_EQ(stat(env["RBDCSI_CEPH_KEYFILE"].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<std::string> key = ReadSmallFile(env["RBDCSI_CEPH_KEYFILE"]);
  ASSERT_THAT(key, IsOk());

  librados::Rados rados;
  ASSERT_EQ(rados.init2(("client." + env["RBDCSI_CEPH_USER"]).c_str(), "ceph", 0), 0);
  ASSERT_EQ(rados.conf_set("mon_host", env["RBDCSI_CEPH_MON"].c_str()), 0);
  ASSERT_EQ(rados.conf_set("key", std::string(absl::StripAsciiWhitespace(*key)).c_str()), 0);
  ASSERT_EQ(rados.conf_set("client_mount_timeout", "10"), 0);
  ASSERT_EQ(rados.connect(), 0);
  librados::IoCtx io;
  ASSERT_EQ(rados.ioctx_create(env["RBDCSI_CEPH_POOL"].c_str(), io), 0);
  librbd::RBD rbd;
  int order = 22;
  ASSERT_EQ(rbd.create2(io, "fixture-smoke", 64 << 20, RBD_FEATURE_LAYERING, &order), 0);
  std::vector<librbd::image_spec_t> images;
  ASSERT_EQ(rbd.list2(io, &images), 0);
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].name, "fixture-smoke");
  EXPECT_EQ(rbd.remove(io, "fixture-smoke"), 0);
  rados.shutdown();
}

}  // namespace
}  // namespace rbdcsi
