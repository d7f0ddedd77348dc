// Table, JSON and operator message of a holder report.
#include "cmd/holders_format.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "driver/holders_message.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rbdcsi {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

Holder PrivatePodMount() {
  Holder h;
  h.kind = HolderKind::kMount;
  h.pid = 21839;
  h.comm = "node_exporter";
  h.container.container_id = "3f2a9c7f19554cbda1079e707f8383b9b62d047beea9fdc2a330278933916f4c";
  h.container.pod_uid = "7c1e2f3a-1b2c-4d5e-8f90-123456789abc";
  h.mount_namespace = 4026532871;
  h.processes_in_namespace = 3;
  h.mount_point = "/host/var/lib/kubelet/plugins/kubernetes.io/csi/rbd/abc/globalmount";
  h.propagation = PropagationClass::kPrivate;
  return h;
}

HolderReport ReportOf(std::vector<Holder> holders) {
  HolderReport r;
  r.device = {250, 0};
  r.holders = std::move(holders);
  return r;
}

TEST(DescribeHoldersTest, PrivatePodMountNamesPidPodAndFix) {
  const std::string message =
      DescribeHolders("pvc-123", "/dev/rbd3", 250, 0, ReportOf({PrivatePodMount()}));
  EXPECT_EQ(message,
            "volume pvc-123: /dev/rbd3 (250:0) is still in use and was not unmapped: mounted at "
            "/host/var/lib/kubelet/plugins/kubernetes.io/csi/rbd/abc/globalmount in mount "
            "namespace 4026532871 of pid 21839 (node_exporter, container 3f2a9c7f1955\u2026, pod "
            "7c1e2f3a-1b2c-4d5e-8f90-123456789abc), propagation private \u2014 it will not be "
            "released by the host unmount; give that pod's host mount mountPropagation: "
            "HostToContainer or restart it.");
}

TEST(DescribeHoldersTest, NamedPodAndContainerAreShown) {
  Holder named = PrivatePodMount();
  named.container.pod_namespace = "monitoring";
  named.container.pod_name = "node-exporter-x7k2p";
  named.container.container_name = "node-exporter";
  const std::string message = DescribeHolders("pvc-123", "/dev/rbd3", 250, 0, ReportOf({named}));
  EXPECT_THAT(message, HasSubstr("of pid 21839 (node_exporter, container node-exporter "
                                 "3f2a9c7f1955\u2026, pod monitoring/node-exporter-x7k2p "
                                 "7c1e2f3a-1b2c-4d5e-8f90-123456789abc)"));
  const nlohmann::json h = HoldersToJson("/dev/rbd3", ReportOf({named}))["holders"][0];
  EXPECT_EQ(h["pod_namespace"], "monitoring");
  EXPECT_EQ(h["pod_name"], "node-exporter-x7k2p");
  EXPECT_EQ(h["container_name"], "node-exporter");
}

TEST(DescribeHoldersTest, EachKindHasItsFix) {
  Holder plain = PrivatePodMount();
  plain.container = {};
  plain.tid = 402;
  Holder pending = PrivatePodMount();
  pending.propagation = PropagationClass::kPending;
  Holder fd;
  fd.kind = HolderKind::kOpenDevice;
  fd.pid = 600;
  fd.comm = "dd";
  fd.file = "fd 3";
  fd.path = "/dev/rbd3";
  Holder cwd;
  cwd.kind = HolderKind::kFileOnFilesystem;
  cwd.pid = 700;
  cwd.comm = "bash";
  cwd.file = "cwd";
  cwd.path = "/data";
  Holder lvm;
  lvm.kind = HolderKind::kStackedDevice;
  lvm.stacked = {"dm-0", {253, 0}, "my--vg-data--lv", "LVM-xyz"};
  Holder crypt;
  crypt.kind = HolderKind::kStackedDevice;
  crypt.stacked = {"dm-1", {253, 1}, "luks-abc", "CRYPT-LUKS2-abc"};
  Holder dm;
  dm.kind = HolderKind::kStackedDevice;
  dm.stacked = {"dm-2", {253, 2}, "snap", "mpath-x"};
  Holder swap;
  swap.kind = HolderKind::kSwap;
  swap.swap_path = "/dev/rbd3";
  Holder orphan = PrivatePodMount();
  orphan.pid = 0;
  orphan.namespace_pinned_at = "/run/pin";
  orphan.namespace_pinned_in = 4026531840;

  EXPECT_THAT(DescribeHolder(plain), AllOf(HasSubstr("thread 402 of pid 21839 (node_exporter)"),
                                           HasSubstr("nsenter -t 402 -m umount /host/var/lib")));
  EXPECT_THAT(DescribeHolder(pending),
              AllOf(HasSubstr("propagation pending"), HasSubstr("the host unmount releases it")));
  EXPECT_THAT(DescribeHolder(fd), AllOf(HasSubstr("opened by pid 600 (dd) as fd 3 (/dev/rbd3)"),
                                        HasSubstr("stop that process")));
  EXPECT_THAT(DescribeHolder(cwd), AllOf(HasSubstr("pid 700 (bash) has its current directory "
                                                   "/data on the device's filesystem"),
                                         HasSubstr("lazy unmount")));
  EXPECT_THAT(DescribeHolder(lvm), HasSubstr("lvchange -an my-vg/data-lv"));
  EXPECT_THAT(DescribeHolder(crypt), HasSubstr("cryptsetup close luks-abc"));
  EXPECT_THAT(DescribeHolder(dm), HasSubstr("dmsetup remove snap"));
  EXPECT_THAT(DescribeHolder(swap), HasSubstr("swapoff /dev/rbd3"));
  EXPECT_THAT(DescribeHolder(orphan),
              AllOf(HasSubstr("has no process left"), HasSubstr("umount /run/pin")));
  const std::string all = DescribeHolders("v", "/dev/rbd3", 250, 0,
                                          ReportOf({plain, pending, fd, cwd, lvm, swap, orphan}));
  EXPECT_THAT(all, AllOf(Not(HasSubstr("errno")), Not(HasSubstr("more holders"))));
}

TEST(DescribeHoldersTest, ManyHoldersAreCounted) {
  std::vector<Holder> many(11, PrivatePodMount());
  const std::string message = DescribeHolders("v", "/dev/rbd3", 250, 0, ReportOf(many));
  EXPECT_THAT(message, HasSubstr("; and 3 more holders (`rbdcsi holders /dev/rbd3` lists them"));
}

TEST(DescribeHoldersTest, BusyWithoutHolders) {
  EXPECT_THAT(DescribeHolders("v", "/dev/rbd3", 250, 0, ReportOf({})),
              HasSubstr("is busy but no holder was found"));
}

TEST(FormatHoldersTableTest, ColumnsLineUp) {
  Holder fd;
  fd.kind = HolderKind::kOpenDevice;
  fd.pid = 600;
  fd.comm = "dd";
  fd.file = "fd 3";
  fd.path = "/dev/rbd3";
  const std::string table = FormatHoldersTable(ReportOf({PrivatePodMount(), fd}));
  const std::vector<std::string> lines = absl::StrSplit(table, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].find("PROPAGATION"), lines[1].find("private"));
  EXPECT_EQ(lines[0].find("MOUNT POINT"), lines[2].find("fd 3: /dev/rbd3"));
  EXPECT_EQ(lines[0].find("NAMESPACE"), lines[1].find("4026532871"));
  EXPECT_EQ(
      lines[1].substr(0, 85),
      "mount        21839  node_exporter  3f2a9c7f1955  7c1e2f3a-1b2c-4d5e-8f90-123456789abc");
  EXPECT_EQ(lines[2].back(), '-');  // An empty cell still shows.
  EXPECT_EQ(FormatHoldersTable(ReportOf({})), "");
}

TEST(HoldersToJsonTest, Fields) {
  HolderReport report = ReportOf({PrivatePodMount()});
  report.method = NamespaceMethod::kKernel;
  report.processes_scanned = 10;
  const nlohmann::json j = HoldersToJson("/dev/rbd3", report);
  EXPECT_EQ(j["device"], "/dev/rbd3");
  EXPECT_EQ(j["major"], 250);
  EXPECT_EQ(j["held"], true);
  EXPECT_EQ(j["method"], "kernel");
  ASSERT_EQ(j["holders"].size(), 1u);
  const nlohmann::json& h = j["holders"][0];
  EXPECT_EQ(h["kind"], "mount");
  EXPECT_EQ(h["pid"], 21839);
  EXPECT_EQ(h["command"], "node_exporter");
  EXPECT_EQ(h["pod_uid"], "7c1e2f3a-1b2c-4d5e-8f90-123456789abc");
  EXPECT_EQ(h["mount_namespace"], 4026532871u);
  EXPECT_EQ(h["propagation"], "private");
  EXPECT_EQ(h["releases_by_itself"], false);
  EXPECT_THAT(h["description"].get<std::string>(), HasSubstr("HostToContainer"));
}

TEST(FormatScanSummaryTest, SaysWhichMethodRan) {
  HolderReport report;
  report.method_note = "no NS_MNT_GET_NEXT";
  EXPECT_THAT(FormatScanSummary(report),
              AllOf(HasSubstr("bind-mounted namespace files only"), HasSubstr("NS_MNT_GET_NEXT")));
}

}  // namespace
}  // namespace rbdcsi
