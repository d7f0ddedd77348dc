#include "holders/cgroup.h"

#include <cctype>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Testdata(const std::string& name) {
  const std::string path = std::string(RBDCSI_TESTDATA_DIR) + "/cgroup/" + name;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct IdentityCase {
  std::string file;
  std::string container_id;
  std::string pod_uid;
  std::string runtime;
};

class IdentifyContainerFileTest : public ::testing::TestWithParam<IdentityCase> {};

TEST_P(IdentifyContainerFileTest, ExactIds) {
  const IdentityCase& c = GetParam();
  const std::string text = Testdata(c.file);
  ASSERT_THAT(ParseCgroupFile(text), IsOk()) << c.file;
  const ContainerIdentity id = IdentifyContainer(text);
  EXPECT_EQ(id.container_id, c.container_id);
  EXPECT_EQ(id.pod_uid, c.pod_uid);
  EXPECT_EQ(id.runtime, c.runtime);
}

INSTANTIATE_TEST_SUITE_P(
    Testdata, IdentifyContainerFileTest,
    ::testing::Values(
        IdentityCase{"k8s_systemd_v2_containerd.txt",
                     "3f2a9c7f19554cbda1079e707f8383b9b62d047beea9fdc2a330278933916f4c",
                     "7c1e2f3a-1b2c-4d5e-8f90-123456789abc", "containerd"},
        IdentityCase{"k8s_systemd_v2_crio.txt",
                     "3be5e29b4891ae3897d86f83f4f7a2fc8ac13421a068f93cdea8c53637269bf0",
                     "0b6d4e2c-95a1-4f3e-b7c8-2d9e1f0a3b4c", "cri-o"},
        IdentityCase{"k8s_systemd_v2_docker.txt",
                     "e94ee118d2b312c9701ce6f7a75060fda45111ecdf00f4ea3cc3aec8fd9b09a6",
                     "5e8a1c3d-7f2b-4a6e-9c0d-1b2a3c4d5e6f", "docker"},
        IdentityCase{"k8s_systemd_v1_static_pod.txt",
                     "46dc480cb0e66c0f53647c2286260e11acc2edf6acda4ac6cf0f26b8174ad326",
                     "9a8b7c6d5e4f30211f2e3d4c5b6a7980", "containerd"},
        IdentityCase{"k8s_cgroupfs_v2.txt",
                     "ca780fc20c3df453bec1237eb0ab42faab652b9ac13a58142a67c25ef6be0cc6",
                     "7c1e2f3a-1b2c-4d5e-8f90-123456789abc", ""},
        IdentityCase{"k8s_cgroupfs_v1.txt",
                     "bea46c9c652a7011eaabf7cd47f16723a5c50625d8211a79a664c31344636538",
                     "d2f1c0b9-8a7e-4d6c-b5a4-f3e2d1c0b9a8", ""},
        IdentityCase{"k8s_driver_mismatch_v1.txt",
                     "335280031e0dea10c9cf43cdb76cd4b076d1a5988580e74bc5076c27a8600c4f",
                     "4f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8", "containerd"},
        IdentityCase{"kind_nested_v2.txt",
                     "71653e511fa8cc547178e0423cbd697c511c687e3f54bd4b93925ecc118ec68e",
                     "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d", "containerd"},
        IdentityCase{"docker_v1.txt",
                     "c6c8b656b87b2a9c7833b58cd687bfe1a00dc7858bf77e3780dd851f7b4ba820", "",
                     "docker"},
        IdentityCase{"docker_systemd_v2.txt",
                     "8418f95bf3907191c4bb2c8bfebd8ae0004a0062958350b18f13cec524af97b2", "",
                     "docker"},
        IdentityCase{"containerd_service_v2.txt", "", "", ""},
        IdentityCase{"in_cgroupns_v2.txt", "", "", ""}, IdentityCase{"host.txt", "", "", ""}),
    [](const ::testing::TestParamInfo<IdentityCase>& info) {
      std::string name = info.param.file.substr(0, info.param.file.find('.'));
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

TEST(ParseCgroupFileTest, HostCapture) {
  absl::StatusOr<std::vector<CgroupLine>> lines = ParseCgroupFile(Testdata("host.txt"));
  ASSERT_THAT(lines, IsOk());
  ASSERT_EQ(lines->size(), 10u);
  EXPECT_EQ((*lines)[0].hierarchy_id, 9);
  EXPECT_THAT((*lines)[0].controllers, ElementsAre("name=systemd"));
  EXPECT_EQ((*lines)[0].path, "/");
  EXPECT_EQ((*lines)[5].hierarchy_id, 4);
  EXPECT_THAT((*lines)[5].controllers, ElementsAre("memory"));
  EXPECT_EQ((*lines)[5].path, "/process_api/923d0fd1c02e2ea4c6c4b4fb4507ee4b");
  EXPECT_EQ((*lines)[9].hierarchy_id, 0);
  EXPECT_THAT((*lines)[9].controllers, IsEmpty());
  EXPECT_EQ((*lines)[9].path, "/");
}

TEST(ParseCgroupFileTest, V1ControllerListsAndV2Line) {
  absl::StatusOr<std::vector<CgroupLine>> lines = ParseCgroupFile(Testdata("k8s_cgroupfs_v1.txt"));
  ASSERT_THAT(lines, IsOk());
  ASSERT_EQ(lines->size(), 13u);
  EXPECT_EQ((*lines)[0].hierarchy_id, 12);
  EXPECT_THAT((*lines)[0].controllers, ElementsAre("hugetlb"));
  EXPECT_THAT((*lines)[6].controllers, ElementsAre("net_cls", "net_prio"));
  EXPECT_EQ((*lines)[6].path,
            "/kubepods/besteffort/podd2f1c0b9-8a7e-4d6c-b5a4-f3e2d1c0b9a8/"
            "bea46c9c652a7011eaabf7cd47f16723a5c50625d8211a79a664c31344636538");
  EXPECT_THAT((*lines)[10].controllers, ElementsAre("cpu", "cpuacct"));
  EXPECT_EQ((*lines)[12].hierarchy_id, 0);
  EXPECT_THAT((*lines)[12].controllers, IsEmpty());
}

TEST(ParseCgroupFileTest, PathKeepsColons) {
  absl::StatusOr<std::vector<CgroupLine>> lines =
      ParseCgroupFile(Testdata("k8s_driver_mismatch_v1.txt"));
  ASSERT_THAT(lines, IsOk());
  ASSERT_EQ(lines->size(), 13u);
  EXPECT_EQ((*lines)[0].path,
            "/system.slice/containerd.service/"
            "kubepods-burstable-pod4f3e2d1c_0b9a_4876_a5b4_c3d2e1f0a9b8.slice:cri-containerd:"
            "335280031e0dea10c9cf43cdb76cd4b076d1a5988580e74bc5076c27a8600c4f");
}

TEST(ParseCgroupFileTest, RejectsMalformedLinesWithLineNumber) {
  for (const std::string bad : {"12:memory", "garbage", ":memory:/", "x::/", "-1::/", "1 ::/"}) {
    absl::StatusOr<std::vector<CgroupLine>> lines =
        ParseCgroupFile(std::string("0::/\n") + bad + "\n");
    EXPECT_THAT(lines, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2"))) << bad;
  }
}

TEST(ParseCgroupFileTest, EmptyInput) {
  absl::StatusOr<std::vector<CgroupLine>> lines = ParseCgroupFile("");
  ASSERT_THAT(lines, IsOk());
  EXPECT_THAT(*lines, IsEmpty());
}

constexpr char kId[] = "3be5e29b4891ae3897d86f83f4f7a2fc8ac13421a068f93cdea8c53637269bf0";
constexpr char kPodSlice[] =
    "/kubepods.slice/kubepods-besteffort.slice/"
    "kubepods-besteffort-pod0b6d4e2c_95a1_4f3e_b7c8_2d9e1f0a3b4c.slice";

TEST(IdentifyContainerTest, ExitingProcessInDeletedCgroup) {
  const ContainerIdentity id = IdentifyContainer(std::string("0::") + kPodSlice +
                                                 "/cri-containerd-" + kId + ".scope (deleted)\n");
  EXPECT_EQ(id.container_id, kId);
  EXPECT_EQ(id.pod_uid, "0b6d4e2c-95a1-4f3e-b7c8-2d9e1f0a3b4c");
  EXPECT_EQ(id.runtime, "containerd");
}

TEST(IdentifyContainerTest, CrioContainerSubgroupAndCgroupfsName) {
  const ContainerIdentity sub =
      IdentifyContainer(std::string("0::") + kPodSlice + "/crio-" + kId + ".scope/container\n");
  EXPECT_EQ(sub.container_id, kId);
  EXPECT_EQ(sub.runtime, "cri-o");
  const ContainerIdentity cgroupfs = IdentifyContainer(
      std::string("0::/kubepods/besteffort/pod0b6d4e2c-95a1-4f3e-b7c8-2d9e1f0a3b4c/crio-") + kId);
  EXPECT_EQ(cgroupfs.container_id, kId);
  EXPECT_EQ(cgroupfs.pod_uid, "0b6d4e2c-95a1-4f3e-b7c8-2d9e1f0a3b4c");
  EXPECT_EQ(cgroupfs.runtime, "cri-o");
}

TEST(IdentifyContainerTest, ConmonIsNotTheContainer) {
  const ContainerIdentity id =
      IdentifyContainer(std::string("0::") + kPodSlice + "/crio-conmon-" + kId + ".scope\n");
  EXPECT_EQ(id.container_id, "");
  EXPECT_EQ(id.runtime, "");
  EXPECT_EQ(id.pod_uid, "0b6d4e2c-95a1-4f3e-b7c8-2d9e1f0a3b4c");
}

TEST(IdentifyContainerTest, PodLevelCgroupHasNoContainer) {
  const ContainerIdentity id = IdentifyContainer(std::string("0::") + kPodSlice + "\n");
  EXPECT_EQ(id.container_id, "");
  EXPECT_EQ(id.pod_uid, "0b6d4e2c-95a1-4f3e-b7c8-2d9e1f0a3b4c");
}

TEST(IdentifyContainerTest, RejectsLookalikes) {
  // Too short, upper case, not hex, and a "pod" slice outside kubepods.
  for (const std::string path :
       {"/docker/3be5e29b",
        "/docker/3BE5E29B4891AE3897D86F83F4F7A2FC8AC13421A068F93CDEA8C53637269BF0",
        "/system.slice/docker-zzz.scope",
        "/user.slice/user-pod0b6d4e2c_95a1_4f3e_b7c8_2d9e1f0a3b4c.slice",
        "/kubepods/besteffort/podnot-a-uid"}) {
    const ContainerIdentity id = IdentifyContainer("0::" + path + "\n");
    EXPECT_EQ(id.container_id, "") << path;
    EXPECT_EQ(id.pod_uid, "") << path;
    EXPECT_EQ(id.runtime, "") << path;
  }
}

TEST(IdentifyContainerTest, IgnoresGarbageLines) {
  const ContainerIdentity id =
      IdentifyContainer(std::string("not a cgroup line\n\n0::/docker/") + kId + "\n");
  EXPECT_EQ(id.container_id, kId);
  EXPECT_EQ(id.runtime, "docker");
  const ContainerIdentity none = IdentifyContainer("\x01\x02 nonsense");
  EXPECT_EQ(none.container_id, "");
}

}  // namespace
}  // namespace rbdcsi
