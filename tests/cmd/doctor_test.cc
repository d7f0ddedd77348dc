// `rbdcsi doctor`'s checks against a fake /proc: which copies are hazards, who is named, and
// how records and mappings are matched. The real-kernel version is doctor_integration_test.
#include "cmd/doctor.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "holders/testing/fake_procfs.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kContainer[] = "3f2a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b";

// The host: / shared on 8:1 (so /var/lib/kubelet is on it), a staged volume 252:0.
constexpr char kHost[] =
    "20 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "40 20 252:0 / /var/lib/kubelet/plugins/rbd/globalmount rw shared:7 - ext4 /dev/rbd0 rw\n";
// node_exporter: the host's / at /host, private, with a private copy of the staged volume.
constexpr char kPrivatePod[] =
    "100 99 0:50 / / rw - overlay overlay rw\n"
    "101 100 8:1 / /host ro - ext4 /dev/sda1 rw\n"
    "102 101 252:0 / /host/var/lib/kubelet/plugins/rbd/globalmount rw - ext4 /dev/rbd0 rw\n";
// A pod done right: HostToContainer makes its copies slaves.
constexpr char kSlavePod[] =
    "200 199 0:60 / / rw - overlay overlay rw\n"
    "201 200 8:1 / /host ro master:1 - ext4 /dev/sda1 rw\n"
    "202 201 252:0 / /host/var/lib/kubelet/plugins/rbd/globalmount rw master:7 - ext4 "
    "/dev/rbd0 rw\n";

class DoctorChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    procfs_.Add(1, 1000);
    procfs_.mountinfo[1000] = kHost;
    FakeProcFs::Process& exporter = procfs_.Add(4242, 2000);
    exporter.comm = "node_exporter";
    exporter.cgroup = std::string(
                          "0::/kubepods.slice/kubepods-burstable.slice/"
                          "kubepods-burstable-pod7c1e2f3a_1b2c_4d5e_8f90_0123456789ab.slice/"
                          "cri-containerd-") +
                      kContainer + ".scope\n";
    procfs_.mountinfo[2000] = kPrivatePod;
    procfs_.Add(5151, 3000).comm = "fluent-bit";
    procfs_.mountinfo[3000] = kSlavePod;

    inputs_.kubelet_dir = "/var/lib/kubelet";
    DoctorVolume v;
    v.volume_id = "pool/vol-1";
    v.mapper = "krbd";
    v.device_path = "/dev/rbd0";
    v.device = {252, 0};
    v.staging_path = "/var/lib/kubelet/plugins/rbd/globalmount";
    v.staging_peer_group = 7;
    v.staging_mount_id = 40;
    inputs_.volumes.push_back(v);
    inputs_.mappings.push_back({"krbd", "/dev/rbd0", {252, 0}, "pool/vol-1"});
    inputs_.listed_mappers = {"krbd", "loop"};
  }

  std::vector<Hazard> Of(const DoctorReport& report, HazardKind kind) {
    std::vector<Hazard> out;
    for (const Hazard& h : report.hazards) {
      if (h.kind == kind) out.push_back(h);
    }
    return out;
  }

  FakeProcFs procfs_;
  DoctorInputs inputs_;
};

TEST_F(DoctorChecksTest, NamesThePrivatePodAndNotTheSlaveOne) {
  absl::StatusOr<DoctorReport> report = RunDoctorChecks(inputs_, procfs_);
  ASSERT_THAT(report, IsOk());
  EXPECT_EQ(report->namespaces_scanned, 3);
  std::vector<Hazard> copies = Of(*report, HazardKind::kPrivateKubeletCopy);
  ASSERT_EQ(copies.size(), 1u) << FormatDoctorTable(*report);
  EXPECT_EQ(copies[0].pid, 4242);
  EXPECT_EQ(copies[0].comm, "node_exporter");
  EXPECT_EQ(copies[0].mount_point, "/host");
  EXPECT_EQ(copies[0].container.container_id, kContainer);
  EXPECT_EQ(copies[0].container.pod_uid, "7c1e2f3a-1b2c-4d5e-8f90-0123456789ab");

  std::vector<Hazard> volumes = Of(*report, HazardKind::kPrivateVolumeCopy);
  ASSERT_EQ(volumes.size(), 1u) << FormatDoctorTable(*report);
  EXPECT_EQ(volumes[0].subject, "pool/vol-1");
  EXPECT_EQ(volumes[0].pid, 4242);
  EXPECT_THAT(volumes[0].fix, HasSubstr("nsenter -t 4242 -m umount "
                                        "/host/var/lib/kubelet/plugins/rbd/globalmount"));
  EXPECT_TRUE(Of(*report, HazardKind::kKubeletDirNotShared).empty());
  EXPECT_TRUE(Of(*report, HazardKind::kMappingWithoutRecord).empty());
  EXPECT_TRUE(Of(*report, HazardKind::kRecordWithoutMapping).empty());

  const std::string table = FormatDoctorTable(*report);
  EXPECT_THAT(table, HasSubstr("private-kubelet-dir-copy"));
  EXPECT_THAT(table, HasSubstr("pod uid 7c1e2f3a-1b2c-4d5e-8f90-0123456789ab (name unknown)"));
  EXPECT_THAT(table, HasSubstr("2 hazard(s)"));
  const nlohmann::json json = DoctorToJson(*report);
  EXPECT_EQ(json["hazards"].size(), 2u);
  EXPECT_EQ(json["hazards"][0]["pod_uid"], "7c1e2f3a-1b2c-4d5e-8f90-0123456789ab");
}

TEST_F(DoctorChecksTest, AnUnsharedKubeletDirIsAHazard) {
  procfs_.mountinfo[1000] = "20 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n";
  absl::StatusOr<DoctorReport> report = RunDoctorChecks(inputs_, procfs_);
  ASSERT_THAT(report, IsOk());
  std::vector<Hazard> hazards = Of(*report, HazardKind::kKubeletDirNotShared);
  ASSERT_EQ(hazards.size(), 1u);
  EXPECT_THAT(hazards[0].fix, HasSubstr("mount --make-rshared /"));
}

TEST_F(DoctorChecksTest, MatchesRecordsAndMappingsByDeviceNumber) {
  procfs_.mountinfo[2000] = kSlavePod;  // no namespace hazards: only the bookkeeping ones
  inputs_.mappings.push_back({"krbd", "/dev/rbd1", {252, 16}, "pool/forgotten"});
  DoctorVolume gone = inputs_.volumes[0];
  gone.volume_id = "pool/vol-2";
  gone.device_path = "/dev/rbd2";
  gone.device = {252, 32};
  inputs_.volumes.push_back(gone);
  DoctorVolume unlisted = gone;
  unlisted.volume_id = "pool/vol-3";
  unlisted.mapper = "nbd";  // its mapper could not list its devices: not judged
  unlisted.device = {43, 0};
  inputs_.volumes.push_back(unlisted);
  absl::StatusOr<DoctorReport> report = RunDoctorChecks(inputs_, procfs_);
  ASSERT_THAT(report, IsOk());
  EXPECT_EQ(report->hazards.size(), 2u) << FormatDoctorTable(*report);
  std::vector<Hazard> unrecorded = Of(*report, HazardKind::kMappingWithoutRecord);
  ASSERT_EQ(unrecorded.size(), 1u);
  EXPECT_EQ(unrecorded[0].subject, "/dev/rbd1");
  EXPECT_THAT(unrecorded[0].fix, HasSubstr("pool/forgotten"));
  std::vector<Hazard> stale = Of(*report, HazardKind::kRecordWithoutMapping);
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].subject, "pool/vol-2");
}

TEST_F(DoctorChecksTest, NoKubeletDirIsANoteNotAHazard) {
  inputs_.kubelet_dir = "";
  procfs_.mountinfo[2000] = kSlavePod;
  absl::StatusOr<DoctorReport> report = RunDoctorChecks(inputs_, procfs_);
  ASSERT_THAT(report, IsOk());
  EXPECT_TRUE(report->hazards.empty()) << FormatDoctorTable(*report);
  ASSERT_EQ(report->notes.size(), 1u);
  EXPECT_THAT(FormatDoctorTable(*report), HasSubstr("no hazards found"));
}

TEST_F(DoctorChecksTest, TheRuntimeNamesThePodOncePerContainer) {
  absl::StatusOr<DoctorReport> report = RunDoctorChecks(inputs_, procfs_);
  ASSERT_THAT(report, IsOk());
  std::vector<std::string> asked;
  NameHazardPods(
      [&asked](const std::string& id) -> absl::StatusOr<ContainerNames> {
        asked.push_back(id);
        return ContainerNames{"monitoring", "node-exporter-x7k2p", "node-exporter"};
      },
      *report);
  EXPECT_EQ(asked, std::vector<std::string>{kContainer});  // two hazards, one container
  ASSERT_EQ(report->hazards.size(), 2u);
  for (const Hazard& h : report->hazards) {
    EXPECT_EQ(h.container.pod_namespace, "monitoring");
    EXPECT_EQ(h.container.pod_name, "node-exporter-x7k2p");
    EXPECT_EQ(h.container.container_name, "node-exporter");
  }
  EXPECT_TRUE(report->notes.empty());
  const std::string table = FormatDoctorTable(*report);
  EXPECT_THAT(table, HasSubstr("pid 4242 (node_exporter) pod monitoring/node-exporter-x7k2p "
                               "container node-exporter (3f2a9c0d1e2f)"));
  EXPECT_THAT(table, Not(HasSubstr("name unknown")));
  const nlohmann::json json = DoctorToJson(*report);
  EXPECT_EQ(json["hazards"][0]["pod_namespace"], "monitoring");
  EXPECT_EQ(json["hazards"][0]["pod_name"], "node-exporter-x7k2p");
  EXPECT_EQ(json["hazards"][0]["container_name"], "node-exporter");
  EXPECT_EQ(json["hazards"][0]["pod_uid"], "7c1e2f3a-1b2c-4d5e-8f90-0123456789ab");
}

TEST_F(DoctorChecksTest, AnUnreachableRuntimeFallsBackToThePodUidAndSaysWhy) {
  // A second container in a pod of its own, with its own private copy of the kubelet dir.
  FakeProcFs::Process& other = procfs_.Add(6161, 4000);
  other.comm = "backup";
  other.cgroup = std::string("0::/kubepods/besteffort/pod0a1b2c3d-0000-4000-8000-000000000001/") +
                 std::string(64, 'e') + "\n";
  procfs_.mountinfo[4000] = kPrivatePod;
  absl::StatusOr<DoctorReport> report = RunDoctorChecks(inputs_, procfs_);
  ASSERT_THAT(report, IsOk());
  ASSERT_EQ(report->hazards.size(), 4u) << FormatDoctorTable(*report);
  int calls = 0;
  NameHazardPods(
      [&calls](const std::string&) -> absl::StatusOr<ContainerNames> {
        ++calls;
        return absl::UnavailableError("unix:///run/containerd/containerd.sock: connect failed");
      },
      *report);
  EXPECT_EQ(calls, 1) << "a runtime that failed is not asked again";
  for (const Hazard& h : report->hazards) EXPECT_EQ(h.container.pod_name, "");
  ASSERT_EQ(report->notes.size(), 1u);
  EXPECT_THAT(report->notes[0], HasSubstr("4 hazard(s) name their pod by uid only: "
                                          "unix:///run/containerd/containerd.sock: connect "
                                          "failed"));
  const std::string table = FormatDoctorTable(*report);
  EXPECT_THAT(table, HasSubstr("pod uid 0a1b2c3d-0000-4000-8000-000000000001 (name unknown)"));
  EXPECT_THAT(table, HasSubstr("note: 4 hazard(s) name their pod by uid only"));
}

TEST_F(DoctorChecksTest, AContainerTheRuntimeDoesNotKnowKeepsItsUid) {
  absl::StatusOr<DoctorReport> report = RunDoctorChecks(inputs_, procfs_);
  ASSERT_THAT(report, IsOk());
  NameHazardPods(
      [](const std::string& id) -> absl::StatusOr<ContainerNames> {
        return absl::NotFoundError("container " + id.substr(0, 12) + " carries no pod labels");
      },
      *report);
  ASSERT_EQ(report->notes.size(), 1u);
  EXPECT_THAT(report->notes[0], HasSubstr("2 hazard(s) name their pod by uid only: container "
                                          "3f2a9c0d1e2f carries no pod labels"));
  EXPECT_THAT(FormatDoctorTable(*report), HasSubstr("pod uid 7c1e2f3a"));
}

}  // namespace
}  // namespace rbdcsi
