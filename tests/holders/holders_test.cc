// Holder scan against a fake node: namespaces, threads, propagation classes, every holder kind.
#include "holders/holders.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "holders/testing/fake_procfs.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;

constexpr DeviceNumber kDevice{250, 0};
constexpr uint64_t kHostNs = 4026531840;
constexpr uint64_t kPodNs = 4026532871;
constexpr uint64_t kSlaveNs = 4026532900;
constexpr uint64_t kThreadNs = 4026532950;
constexpr uint64_t kOrphanNs = 4026533000;
constexpr char kGlobalMount[] = "/var/lib/kubelet/plugins/kubernetes.io/csi/rbd/abc/globalmount";

// A host mount table: root, the kubelet directory (shared:1) and, optionally, the staging mount
// of the device (shared:7).
std::string HostTable(bool staged) {
  std::string t =
      "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
      "30 22 0:22 / /proc rw,relatime shared:2 - proc proc rw\n";
  if (staged)
    absl::StrAppend(&t, "55 22 250:0 / ", kGlobalMount, " rw shared:7 - ext4 /dev/rbd3 rw\n");
  return t;
}

// A container's table: its root and a copy of the device mount with `tags`.
std::string ContainerTable(const std::string& mount_point, const std::string& tags) {
  return absl::StrCat("900 800 0:55 / / rw - overlay overlay rw\n", "901 900 250:0 / ", mount_point,
                      " rw", tags.empty() ? "" : " ", tags, " - ext4 /dev/rbd3 rw\n");
}

}  // namespace

// Readable failures instead of byte dumps.
void PrintTo(const Holder& h, std::ostream* os) {
  *os << HolderKindName(h.kind) << " pid=" << h.pid << " tid=" << h.tid
      << " ns=" << h.mount_namespace << " at=" << h.mount_point << " file=" << h.file
      << " class=" << PropagationClassName(h.propagation);
}

namespace {

class HoldersTest : public ::testing::Test {
 protected:
  HoldersTest() {
    fake_.Add(1, kHostNs).comm = "systemd";
    fake_.self = 1;
    fake_.mountinfo[kHostNs] = HostTable(false);
  }

  HolderReport Scan(const ScanOptions& options = {}) {
    HolderScanner scanner(fake_);
    absl::StatusOr<HolderReport> report = scanner.Scan(kDevice.major, kDevice.minor, options);
    EXPECT_THAT(report, IsOk());
    return report.ok() ? *report : HolderReport{};
  }

  FakeProcFs fake_;
};

TEST_F(HoldersTest, FreeDeviceHasNoHolders) {
  fake_.Add(100, kHostNs);
  const HolderReport report = Scan();
  EXPECT_FALSE(report.held());
  EXPECT_EQ(report.processes_scanned, 2);
  EXPECT_EQ(report.method, NamespaceMethod::kKernel);
}

TEST_F(HoldersTest, ReadsEachNamespaceOnceAndNamesItsLowestProcess) {
  fake_.mountinfo[kHostNs] = HostTable(true);
  fake_.mountinfo[kPodNs] = ContainerTable("/host/var/lib/kubelet/globalmount", "");
  for (pid_t pid : {21839, 21840, 21850}) {
    FakeProcFs::Process& p = fake_.Add(pid, kPodNs);
    p.comm = "node_exporter";
    p.cgroup =
        ReadFileOrEmpty(std::string(RBDCSI_TESTDATA_DIR) + "/cgroup/k8s_systemd_v2_containerd.txt");
  }
  const HolderReport report = Scan();
  EXPECT_THAT(fake_.mountinfo_reads, ElementsAre(Pair(kHostNs, 1), Pair(kPodNs, 1)));
  ASSERT_THAT(report.holders, SizeIs(2));
  const Holder& host = report.holders[0];
  EXPECT_EQ(host.pid, 1);
  EXPECT_TRUE(host.host_namespace);
  EXPECT_EQ(host.mount_point, kGlobalMount);
  const Holder& pod = report.holders[1];
  EXPECT_EQ(pod.kind, HolderKind::kMount);
  EXPECT_EQ(pod.pid, 21839);
  EXPECT_EQ(pod.comm, "node_exporter");
  EXPECT_EQ(pod.mount_namespace, kPodNs);
  EXPECT_FALSE(pod.host_namespace);
  EXPECT_EQ(pod.processes_in_namespace, 3);
  EXPECT_EQ(pod.mount_point, "/host/var/lib/kubelet/globalmount");
  EXPECT_EQ(pod.container.container_id,
            "3f2a9c7f19554cbda1079e707f8383b9b62d047beea9fdc2a330278933916f4c");
  EXPECT_EQ(pod.container.pod_uid, "7c1e2f3a-1b2c-4d5e-8f90-123456789abc");
  EXPECT_EQ(pod.cmdline, "sleep 1000");
}

// Names by container id, counting the questions.
class FakeNamer final : public ContainerNamer {
 public:
  void Name(ContainerIdentity& identity) const override {
    ++asked;
    identity.pod_namespace = "monitoring";
    identity.pod_name = "node-exporter-x7k2p";
    identity.container_name = "node-exporter";
  }
  mutable int asked = 0;
};

TEST_F(HoldersTest, ANamerNamesContainerHoldersOncePerProcess) {
  fake_.mountinfo[kHostNs] = HostTable(true);
  fake_.mountinfo[kPodNs] = ContainerTable("/host/var/lib/kubelet/globalmount", "");
  FakeProcFs::Process& p = fake_.Add(21839, kPodNs);
  p.cgroup =
      ReadFileOrEmpty(std::string(RBDCSI_TESTDATA_DIR) + "/cgroup/k8s_systemd_v2_containerd.txt");
  FakeNamer namer;
  HolderScanner scanner(fake_);
  scanner.set_container_namer(&namer);
  absl::StatusOr<HolderReport> report = scanner.Scan(kDevice.major, kDevice.minor, {});
  ASSERT_THAT(report, IsOk());
  ASSERT_THAT(report->holders, SizeIs(2));
  EXPECT_EQ(report->holders[0].container.pod_name, "");  // the host: not in a container
  EXPECT_EQ(report->holders[1].container.pod_namespace, "monitoring");
  EXPECT_EQ(report->holders[1].container.pod_name, "node-exporter-x7k2p");
  EXPECT_EQ(report->holders[1].container.container_name, "node-exporter");
  EXPECT_EQ(namer.asked, 1);
}

TEST_F(HoldersTest, ThroughProcEachNamespaceIsReadOnceToo) {
  fake_.kernel_iteration = false;
  fake_.mountinfo[kPodNs] = ContainerTable("/host/globalmount", "");
  for (pid_t pid : {200, 201, 202}) fake_.Add(pid, kPodNs);
  fake_.Add(100, kHostNs);
  const HolderReport report = Scan();
  EXPECT_EQ(report.method, NamespaceMethod::kProc);
  EXPECT_THAT(fake_.mountinfo_reads, ElementsAre(Pair(kHostNs, 1), Pair(kPodNs, 1)));
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_EQ(report.holders[0].pid, 200);
  EXPECT_EQ(report.holders[0].processes_in_namespace, 3);
}

TEST_F(HoldersTest, SlaveOfTheHostPeerGroupIsPendingOthersPrivate) {
  fake_.mountinfo[kHostNs] = HostTable(true);
  fake_.mountinfo[kPodNs] = ContainerTable("/host/globalmount", "");
  fake_.mountinfo[kSlaveNs] = ContainerTable("/var/lib/kubelet/globalmount", "master:7");
  fake_.Add(200, kPodNs);
  fake_.Add(300, kSlaveNs);
  ScanOptions options;
  options.host_peer_group = 7;
  const HolderReport report = Scan(options);
  ASSERT_THAT(report.holders, SizeIs(3));
  EXPECT_EQ(report.holders[0].propagation, PropagationClass::kPending);  // The peer group itself.
  EXPECT_EQ(report.holders[1].pid, 200);
  EXPECT_EQ(report.holders[1].propagation, PropagationClass::kPrivate);
  EXPECT_EQ(report.holders[2].pid, 300);
  EXPECT_EQ(report.holders[2].propagation, PropagationClass::kPending);
  EXPECT_THAT(report.holders[2].propagation_tags, ElementsAre("master:7"));
  EXPECT_FALSE(report.OnlySelfReleasing());
}

TEST_F(HoldersTest, WithoutAHostPeerGroupEveryCopyIsPrivate) {
  fake_.mountinfo[kSlaveNs] = ContainerTable("/var/lib/kubelet/globalmount", "master:7");
  fake_.Add(300, kSlaveNs);
  const HolderReport report = Scan();
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_EQ(report.holders[0].propagation, PropagationClass::kPrivate);
}

TEST_F(HoldersTest, SlaveOfASlaveIsPendingToo) {
  fake_.mountinfo[kSlaveNs] = ContainerTable("/kubelet/globalmount", "shared:40 master:7");
  fake_.mountinfo[kPodNs] = ContainerTable("/nested/globalmount", "master:40");
  fake_.Add(200, kPodNs);
  fake_.Add(300, kSlaveNs);
  ScanOptions options;
  options.host_peer_group = 7;
  const HolderReport report = Scan(options);
  ASSERT_THAT(report.holders, SizeIs(2));
  EXPECT_THAT(report.holders,
              testing::Each(Field(&Holder::propagation, PropagationClass::kPending)));
  EXPECT_TRUE(report.OnlySelfReleasing());
}

TEST_F(HoldersTest, TheHostMountBeingUnmountedIsPendingEvenIfNotShared) {
  fake_.mountinfo[kHostNs] = absl::StrCat(
      "22 1 253:0 / / rw - ext4 /dev/vda1 rw\n", "55 22 250:0 / ", kGlobalMount,
      " rw - ext4 /dev/rbd3 rw\n", "56 22 250:0 / /mnt/other rw - ext4 /dev/rbd3 rw\n");
  ScanOptions options;
  options.host_mount_id = 55;
  const HolderReport report = Scan(options);
  ASSERT_THAT(report.holders, SizeIs(2));
  EXPECT_EQ(report.holders[0].mount_id, 55);
  EXPECT_EQ(report.holders[0].propagation, PropagationClass::kPending);
  EXPECT_EQ(report.holders[1].mount_id, 56);
  EXPECT_EQ(report.holders[1].propagation, PropagationClass::kPrivate);
}

TEST_F(HoldersTest, ThreadWithItsOwnNamespaceIsFoundAndReadThroughThatThread) {
  FakeProcFs::Process& p = fake_.Add(400, kHostNs);
  p.comm = "multi";
  p.threads = {{401, kHostNs}, {402, kThreadNs}, {403, kHostNs}};
  fake_.mountinfo[kThreadNs] = ContainerTable("/private/mnt", "");
  fake_.Add(500, kHostNs);         // Single-threaded: its threads are never listed.
  fake_.kernel_iteration = false;  // So that the table is read through /proc, via the thread.
  const HolderReport report = Scan();
  EXPECT_EQ(fake_.thread_listings, 1);
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_EQ(report.holders[0].pid, 400);
  EXPECT_EQ(report.holders[0].tid, 402);
  EXPECT_EQ(report.holders[0].comm, "multi");
  EXPECT_EQ(report.holders[0].mount_namespace, kThreadNs);
  EXPECT_EQ(report.holders[0].propagation, PropagationClass::kPrivate);
  EXPECT_THAT(fake_.mountinfo_reads_by_task, testing::Contains(Pair(400, 402)));
  EXPECT_EQ(fake_.mountinfo_reads[kThreadNs], 1);
}

TEST_F(HoldersTest, OpenDeviceAndFilesOnTheFilesystem) {
  FakeProcFs::Process& opener = fake_.Add(600, kHostNs);
  opener.comm = "dd";
  opener.files = {{FdOn(3, {0, 6}, kDevice, true), "/dev/rbd3"},
                  {FdOn(4, {0, 6}, kDevice, true), "/dev/rbd3"},
                  {FdOn(5, {0, 6}, {250, 16}, true), "/dev/rbd4"}};
  FakeProcFs::Process& lazy = fake_.Add(700, kHostNs);
  lazy.comm = "bash";
  lazy.files = {{SlotOn(ProcessFile::Slot::kCwd, kDevice), "/data"},
                {SlotOn(ProcessFile::Slot::kRoot, {253, 0}), "/"}};
  const HolderReport report = Scan();
  ASSERT_THAT(report.holders, SizeIs(2));
  const Holder& device = report.holders[0];
  EXPECT_EQ(device.kind, HolderKind::kOpenDevice);
  EXPECT_EQ(device.pid, 600);
  EXPECT_EQ(device.file, "fd 3");
  EXPECT_EQ(device.other_files, 1);
  EXPECT_EQ(device.path, "/dev/rbd3");
  const Holder& cwd = report.holders[1];
  EXPECT_EQ(cwd.kind, HolderKind::kFileOnFilesystem);
  EXPECT_EQ(cwd.pid, 700);
  EXPECT_EQ(cwd.comm, "bash");
  EXPECT_EQ(cwd.file, "cwd");
  EXPECT_EQ(cwd.path, "/data");
  EXPECT_FALSE(report.OnlySelfReleasing());
}

TEST_F(HoldersTest, KernelThreadsNeitherHoldNorNameANamespace) {
  fake_.processes.clear();
  FakeProcFs::Process& kthread = fake_.Add(2, kHostNs);
  kthread.kernel_thread = true;
  kthread.files = {{SlotOn(ProcessFile::Slot::kCwd, kDevice), "/"}};
  fake_.Add(5, kHostNs).comm = "init";
  fake_.mountinfo[kHostNs] = HostTable(true);
  const HolderReport report = Scan();
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_EQ(report.holders[0].kind, HolderKind::kMount);
  EXPECT_EQ(report.holders[0].pid, 5);
  EXPECT_EQ(report.holders[0].comm, "init");
}

TEST_F(HoldersTest, ExcludedProcessesAreNotFileHolders) {
  fake_.Add(600, kHostNs).files = {{FdOn(3, {0, 6}, kDevice, true), "/dev/rbd3"}};
  ScanOptions options;
  options.exclude_pids = {600};
  EXPECT_FALSE(Scan(options).held());
  options.exclude_pids.clear();
  options.scan_process_files = false;
  EXPECT_FALSE(Scan(options).held());
}

TEST_F(HoldersTest, ExitingProcessReleasesByItself) {
  FakeProcFs::Process& p = fake_.Add(600, kHostNs);
  p.stat_flags = "4194308";  // PF_EXITING
  p.files = {{FdOn(3, {0, 6}, kDevice, true), "/dev/rbd3"}};
  const HolderReport report = Scan();
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_TRUE(report.holders[0].exiting);
  EXPECT_TRUE(report.OnlySelfReleasing());
}

TEST_F(HoldersTest, MountOfAPartitionHoldsTheDevice) {
  fake_.partitions = {{250, 1}};
  fake_.mountinfo[kHostNs] =
      "22 1 253:0 / / rw - ext4 /dev/vda1 rw\n"
      "60 22 250:1 / /mnt/part rw - ext4 /dev/rbd3p1 rw\n";
  const HolderReport report = Scan();
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_EQ(report.holders[0].mount_point, "/mnt/part");
}

TEST_F(HoldersTest, StackedDeviceAndSwap) {
  fake_.stacked = {{"dm-0", {253, 5}, "vg0-data", "LVM-abc"}};
  fake_.swaps +=
      "/dev/rbd3                               partition\t1048572\t\t0\t\t-2\n"
      "/swap\\040file                          file\t\t1048572\t\t0\t\t-3\n"
      "/other                                 file\t\t1048572\t\t0\t\t-4\n";
  ProcessFile node;
  node.block_device = true;
  node.rdev = kDevice;
  fake_.paths["/dev/rbd3"] = node;
  ProcessFile file;
  file.dev = kDevice;
  fake_.paths["/swap file"] = file;
  fake_.paths["/other"] = ProcessFile{};
  const HolderReport report = Scan();
  ASSERT_THAT(report.holders, SizeIs(3));
  EXPECT_EQ(report.holders[0].kind, HolderKind::kStackedDevice);
  EXPECT_EQ(report.holders[0].stacked.dm_name, "vg0-data");
  EXPECT_EQ(report.holders[1].kind, HolderKind::kSwap);
  EXPECT_EQ(report.holders[1].swap_path, "/dev/rbd3");
  EXPECT_EQ(report.holders[2].swap_path, "/swap file");
}

TEST_F(HoldersTest, NamespaceWithoutProcessFromTheKernel) {
  fake_.mountinfo[kHostNs] =
      HostTable(false) + "70 22 0:4 mnt:[4026533000] /run/pin rw - nsfs nsfs rw\n";
  fake_.mountinfo[kOrphanNs] = ContainerTable("/mnt/held", "");
  const HolderReport report = Scan();
  EXPECT_EQ(report.method, NamespaceMethod::kKernel);
  ASSERT_THAT(report.holders, SizeIs(1));
  const Holder& h = report.holders[0];
  EXPECT_EQ(h.pid, 0);
  EXPECT_EQ(h.mount_namespace, kOrphanNs);
  EXPECT_EQ(h.mount_point, "/mnt/held");
  EXPECT_EQ(h.namespace_pinned_at, "/run/pin");
  EXPECT_EQ(h.namespace_pinned_in, kHostNs);
  EXPECT_EQ(h.propagation, PropagationClass::kPrivate);
}

TEST_F(HoldersTest, NamespaceWithoutProcessFallsBackToPinsInProc) {
  fake_.kernel_iteration = false;
  fake_.mountinfo[kHostNs] =
      HostTable(false) + "70 22 0:4 mnt:[4026533000] /run/pin rw - nsfs nsfs rw\n";
  fake_.mountinfo[kOrphanNs] = ContainerTable("/mnt/held", "");
  fake_.namespace_files["/proc/1/root/run/pin"] = kOrphanNs;
  const HolderReport report = Scan();
  EXPECT_EQ(report.method, NamespaceMethod::kProc);
  EXPECT_THAT(report.method_note, testing::HasSubstr("NS_MNT_GET_NEXT"));
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_EQ(report.holders[0].mount_namespace, kOrphanNs);
  EXPECT_EQ(report.holders[0].namespace_pinned_at, "/run/pin");
}

TEST_F(HoldersTest, VanishedProcessesAreSkipped) {
  fake_.ghosts = {650, 651};
  fake_.Add(700, kHostNs).files = {{FdOn(3, {0, 6}, kDevice, true), "/dev/rbd3"}};
  const HolderReport report = Scan();
  EXPECT_EQ(report.processes_scanned, 2);
  ASSERT_THAT(report.holders, SizeIs(1));
  EXPECT_EQ(report.holders[0].pid, 700);
}

TEST(ForEachMountLineOfTest, MatchesOnlyTheDeviceField) {
  const std::string text =
      "1 0 250:0 / / rw - ext4 a rw\n"
      "2 1 250:01 / /x rw - ext4 b rw\n"
      "3 1 8:0 /250:0 /250:0 rw - ext4 c rw\n"
      "4 1 250:0 / /y rw - ext4 d rw";
  std::vector<std::string> lines;
  ForEachMountLineOf(text, {"250:0"}, [&](std::string_view l) { lines.emplace_back(l); });
  EXPECT_THAT(lines, ElementsAre(testing::StartsWith("1 "), testing::StartsWith("4 ")));
}

TEST(HolderNamesTest, Names) {
  EXPECT_EQ(HolderKindName(HolderKind::kFileOnFilesystem), "open-file");
  EXPECT_EQ(PropagationClassName(PropagationClass::kPending), "pending");
  EXPECT_EQ(NamespaceMethodName(NamespaceMethod::kKernel), "kernel");
}

}  // namespace
}  // namespace rbdcsi
