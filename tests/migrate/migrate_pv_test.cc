// `rbdcsi migrate-pv` against golden files: real in-tree PVs in tests/testdata/migrate/NAME.in.*,
// the expected stdout in NAME.out.yaml and stderr in NAME.err. RBDCSI_UPDATE_GOLDEN=1 rewrites
// the expected files (review the diff!).
#include "cmd/migrate_pv.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "migrate/yaml.h"

namespace rbdcsi {
namespace {

const std::string kDir = std::string(RBDCSI_TESTDATA_DIR) + "/migrate/";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct GoldenCase {
  const char* name;
  const char* input;
  int exit_code;
};

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, MatchesExpectedOutput) {
  const GoldenCase& c = GetParam();
  std::ifstream in(kDir + c.input);
  ASSERT_TRUE(in) << c.input;
  std::ostringstream out, err;
  EXPECT_EQ(RunMigratePv(MigratePvFlags{}, in, out, err), c.exit_code) << err.str();
  const std::string out_path = kDir + c.name + ".out.yaml";
  const std::string err_path = kDir + c.name + ".err";
  if (std::getenv("RBDCSI_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(out_path) << out.str();
    std::ofstream(err_path) << err.str();
  }
  EXPECT_EQ(out.str(), ReadFile(out_path));
  EXPECT_EQ(err.str(), ReadFile(err_path));

  // What was printed is YAML that reads back as the same objects, each a CSI PV of this driver.
  absl::StatusOr<std::vector<nlohmann::json>> back = ParseYamlDocuments(out.str());
  ASSERT_TRUE(back.ok()) << back.status();
  for (const nlohmann::json& pv : *back) {
    EXPECT_EQ(pv["spec"]["csi"]["driver"], "rbd.rbdcsi.dev");
    EXPECT_FALSE(pv["spec"].contains("rbd"));
    EXPECT_FALSE(pv["metadata"].contains("uid"));
  }
}

INSTANTIATE_TEST_SUITE_P(InTreePvs, GoldenTest,
                         ::testing::Values(GoldenCase{"dynamic", "dynamic.in.yaml", 0},
                                           GoldenCase{"list", "list.in.json", 1},
                                           GoldenCase{"refused", "refused.in.yaml", 1},
                                           GoldenCase{"block-readonly", "block-readonly.in.yaml",
                                                      0}),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                           std::string name = info.param.name;
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

TEST(MigratePvTest, UnreadableInputIsAnError) {
  std::istringstream in("apiVersion: v1\nkind: [unclosed\n");
  std::ostringstream out, err;
  EXPECT_EQ(RunMigratePv(MigratePvFlags{}, in, out, err), 2);
  EXPECT_EQ(out.str(), "");
  EXPECT_NE(err.str().find("not valid YAML or JSON: line "), std::string::npos) << err.str();
}

TEST(MigratePvTest, EmptyInputIsAnError) {
  std::istringstream in("# nothing\n---\n");
  std::ostringstream out, err;
  EXPECT_EQ(RunMigratePv(MigratePvFlags{}, in, out, err), 2);
  EXPECT_NE(err.str().find("holds no object"), std::string::npos);
}

TEST(MigratePvTest, DriverNameAndMapperAreOptions) {
  std::ifstream in(kDir + "dynamic.in.yaml");
  MigratePvFlags flags;
  flags.options.driver_name = "rbd.example.com";
  flags.options.mapper = "nbd";
  std::ostringstream out, err;
  ASSERT_EQ(RunMigratePv(flags, in, out, err), 0);
  auto pvs = ParseYamlDocuments(out.str());
  ASSERT_TRUE(pvs.ok());
  ASSERT_EQ(pvs->size(), 1u);
  EXPECT_EQ((*pvs)[0]["spec"]["csi"]["driver"], "rbd.example.com");
  EXPECT_EQ((*pvs)[0]["spec"]["csi"]["volumeAttributes"]["mapper"], "nbd");

  flags.options.driver_name = "not a driver name";
  std::istringstream again("{}");
  EXPECT_EQ(RunMigratePv(flags, again, out, err), 2);
}

TEST(YamlTest, AmbiguousStringsSurviveARoundTrip) {
  const nlohmann::json value = {
      {"list", {"true", "0123", "1e3", "", "a: b", "null", "- x", "#c", "ok", 7, true, nullptr}},
      {"nested", {{"empty", nlohmann::json::object()}, {"none", nlohmann::json::array()}}},
      {"8080", "quoted key"},
      {"objects", {{{"a", 1}, {"b", {1, 2}}}, {{"c", "d"}}}}};
  const std::string text = EmitYaml(value);
  absl::StatusOr<std::vector<nlohmann::json>> back = ParseYamlDocuments(text);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0], value) << text;
}

TEST(YamlTest, PlainScalarsTakeTheirYamlType) {
  auto docs = ParseYamlDocuments("a: true\nb: 12\nc: \"12\"\nd: ~\ne: 10Gi\n");
  ASSERT_TRUE(docs.ok());
  const nlohmann::json expected = {
      {"a", true}, {"b", 12}, {"c", "12"}, {"d", nullptr}, {"e", "10Gi"}};
  EXPECT_EQ((*docs)[0], expected);
}

}  // namespace
}  // namespace rbdcsi
