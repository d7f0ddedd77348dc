#include "rbd/cluster_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kGood[] = R"([
  {"clusterID": "c1", "monitors": ["10.0.0.1:6789", "[fd00::1]:3300", "mon.example"],
   "rbd": {"radosNamespace": "team-a"},
   "controllerCredentials": {"userID": "csi", "keyFile": "/etc/rbdcsi/c1.key"}},
  {"clusterID": "c2", "monitors": ["127.0.0.1:16789"]}
])";

TEST(ParseClusterConfig, ReadsTheCephCsiShape) {
  absl::StatusOr<std::vector<ClusterConfig>> config = ParseClusterConfig(kGood);
  ASSERT_THAT(config, IsOk());
  ASSERT_EQ(config->size(), 2u);
  const ClusterConfig& c1 = (*config)[0];
  EXPECT_EQ(c1.cluster_id, "c1");
  EXPECT_THAT(c1.monitors, ElementsAre("10.0.0.1:6789", "[fd00::1]:3300", "mon.example"));
  EXPECT_EQ(c1.MonitorList(), "10.0.0.1:6789,[fd00::1]:3300,mon.example");
  EXPECT_EQ(c1.rados_namespace, "team-a");
  EXPECT_EQ(c1.controller_user, "csi");
  EXPECT_EQ(c1.controller_key_file, "/etc/rbdcsi/c1.key");
  EXPECT_EQ((*config)[1].rados_namespace, "");
  EXPECT_EQ((*config)[1].controller_user, "");
}

TEST(ParseClusterConfig, NamesTheProblem) {
  const struct {
    const char* json;
    const char* why;
  } cases[] = {
      {"{", "not valid JSON"},
      {R"({"clusterID": "c1"})", "must be a JSON array"},
      {R"([{"monitors": ["a:1"]}])", "entry 0: clusterID is missing"},
      {R"([{"clusterID": "a/b", "monitors": ["a:1"]}])", "clusterID"},
      {R"([{"clusterID": "c", "monitors": []}])", "monitors must be"},
      {R"([{"clusterID": "c", "monitors": ["a:99999"]}])", "invalid entry \"a:99999\""},
      {R"([{"clusterID": "c", "monitors": ["a b:1"]}])", "invalid entry"},
      {R"([{"clusterID": "c", "monitors": ["a:1"]}, {"clusterID": "c", "monitors": ["b:1"]}])",
       "entry 1: clusterID \"c\" appears twice"},
      {R"([{"clusterID": "c", "monitors": ["a:1"], "rbd": {"radosNamespace": 3}}])",
       "radosNamespace is not a string"},
      {R"([{"clusterID": "c", "monitors": ["a:1"], "controllerCredentials": {"userID": "u",
          "keyFile": "rel"}}])",
       "absolute keyFile"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(ParseClusterConfig(c.json),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.why)))
        << c.json;
  }
}

void WriteFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << text;
  rename(tmp.c_str(), path.c_str());  // as a ConfigMap update swaps the file
}

TEST(ClusterConfigSource, ReloadsAChangedFileAndKeepsTheOldOneWhenTheNewIsBad) {
  TempDir dir("cluster-config");
  const std::string path = dir / "config.json";
  WriteFile(path, R"([{"clusterID": "c1", "monitors": ["10.0.0.1:6789"]}])");
  absl::StatusOr<std::unique_ptr<ClusterConfigSource>> source = ClusterConfigSource::Load(path);
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ((*source)->Find("c1")->MonitorList(), "10.0.0.1:6789");
  EXPECT_THAT((*source)->Find("c2"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("c2")));

  WriteFile(path, R"([{"clusterID": "c2", "monitors": ["10.0.0.2:6789"]}])");
  EXPECT_THAT((*source)->Reload(), IsOk());
  EXPECT_THAT((*source)->Find("c2"), IsOk());
  EXPECT_THAT((*source)->Find("c1"), StatusIs(absl::StatusCode::kNotFound, _));

  WriteFile(path, "[{");
  EXPECT_THAT((*source)->Reload(), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT((*source)->Find("c2"), IsOk());  // the previous configuration stays
}

TEST(ClusterConfigSource, ABadFileAtStartNamesFileAndProblem) {
  TempDir dir("cluster-config");
  WriteFile(dir / "bad.json", R"([{"clusterID": "c1"}])");
  EXPECT_THAT(ClusterConfigSource::Load(dir / "bad.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("bad.json"), HasSubstr("monitors"))));
  EXPECT_THAT(ClusterConfigSource::Load(dir / "missing.json"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.json")));
}

TEST(ClusterConfigSource, ControllerKeyFileMustBePrivate) {
  TempDir dir("cluster-config");
  ClusterConfig c;
  c.cluster_id = "c1";
  EXPECT_THAT(ClusterConfigSource::ReadControllerKey(c),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("controllerCredentials")));
  c.controller_user = "csi";
  c.controller_key_file = dir / "key";
  std::ofstream(c.controller_key_file) << "AQBsecretsecret==\n";
  chmod(c.controller_key_file.c_str(), 0644);
  EXPECT_THAT(ClusterConfigSource::ReadControllerKey(c),
              StatusIs(absl::StatusCode::kPermissionDenied, Not(HasSubstr("AQBsecret"))));
  chmod(c.controller_key_file.c_str(), 0600);
  EXPECT_EQ(*ClusterConfigSource::ReadControllerKey(c), "AQBsecretsecret==");
}

}  // namespace
}  // namespace rbdcsi
