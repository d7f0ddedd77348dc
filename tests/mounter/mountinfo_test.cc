#include "mounter/mountinfo.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Read with the standard library so that a bug in ReadWholeFile cannot hide one in the parser.
std::string Testdata(const std::string& name) {
  const std::string path = std::string(RBDCSI_TESTDATA_DIR) + "/mountinfo/" + name;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<MountInfo> ParseTestdata(const std::string& name) {
  absl::StatusOr<std::vector<MountInfo>> mounts = ParseMountInfo(Testdata(name));
  EXPECT_THAT(mounts, IsOk()) << name;
  return mounts.ok() ? *std::move(mounts) : std::vector<MountInfo>();
}

// The mount at `mount_point`; the last one when several are stacked there, as the kernel does.
const MountInfo* Find(const std::vector<MountInfo>& mounts, const std::string& mount_point) {
  const MountInfo* found = nullptr;
  for (const MountInfo& m : mounts) {
    if (m.mount_point == mount_point) found = &m;
  }
  return found;
}

TEST(ParseMountInfoTest, HostCapture) {
  const std::vector<MountInfo> mounts = ParseTestdata("host.txt");
  ASSERT_EQ(mounts.size(), 20u);

  const MountInfo* root = Find(mounts, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->mount_id, 27);
  EXPECT_EQ(root->parent_id, 1);
  EXPECT_EQ(root->major, 254u);
  EXPECT_EQ(root->minor, 0u);
  EXPECT_EQ(root->root, "/");
  EXPECT_EQ(root->mount_options, "rw,relatime");
  EXPECT_THAT(root->optional_fields, IsEmpty());
  EXPECT_EQ(root->fs_type, "ext4");
  EXPECT_EQ(root->source, "/dev/vda");
  EXPECT_EQ(root->super_options, "rw,discard,resv_strict,resuid=65534,resgid=65534");
  EXPECT_EQ(PropagationOf(*root), Propagation::kPrivate);

  const MountInfo* dev = Find(mounts, "/dev");
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->major, 0u);
  EXPECT_EQ(dev->minor, 6u);
  EXPECT_EQ(dev->fs_type, "devtmpfs");

  const MountInfo* python = Find(mounts, "/mnt/sandboxing/model_tools_env/v1/python");
  ASSERT_NE(python, nullptr);
  EXPECT_EQ(python->mount_options, "ro,nosuid,nodev,relatime");
  EXPECT_EQ(python->source, "model_tools_unavailable");
  EXPECT_EQ(python->super_options, "ro,size=4k,mode=755");

  const MountInfo* systemd = Find(mounts, "/sys/fs/cgroup/systemd");
  ASSERT_NE(systemd, nullptr);
  EXPECT_EQ(systemd->super_options, "rw,name=systemd");
}

TEST(ParseMountInfoTest, PrivateNamespaceHasNoPropagation) {
  const std::vector<MountInfo> mounts = ParseTestdata("private_ns.txt");
  ASSERT_EQ(mounts.size(), 20u);
  EXPECT_EQ(mounts[0].mount_id, 43);
  EXPECT_EQ(mounts[0].parent_id, 42);
  EXPECT_EQ(mounts[0].mount_point, "/");
  for (const MountInfo& m : mounts) {
    EXPECT_EQ(PropagationOf(m), Propagation::kPrivate) << m.mount_point;
    EXPECT_FALSE(m.shared_peer_group().has_value());
    EXPECT_FALSE(m.master_peer_group().has_value());
  }
  // The second /dev/pts is stacked on the first (parent 61 is the mount with id 61).
  const MountInfo* pts = Find(mounts, "/dev/pts");
  ASSERT_NE(pts, nullptr);
  EXPECT_EQ(pts->mount_id, 62);
  EXPECT_EQ(pts->parent_id, 61);
  EXPECT_EQ(pts->minor, 26u);
}

TEST(ParseMountInfoTest, SharedHostNamespace) {
  const std::vector<MountInfo> mounts = ParseTestdata("shared_host_ns.txt");
  ASSERT_EQ(mounts.size(), 20u);
  const MountInfo* root = Find(mounts, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_THAT(root->optional_fields, ElementsAre("shared:1"));
  EXPECT_EQ(root->shared_peer_group(), 1);
  EXPECT_EQ(root->master_peer_group(), std::nullopt);
  EXPECT_EQ(PropagationOf(*root), Propagation::kShared);
  for (const MountInfo& m : mounts) EXPECT_EQ(PropagationOf(m), Propagation::kShared);
}

TEST(ParseMountInfoTest, SlaveNamespace) {
  const std::vector<MountInfo> mounts = ParseTestdata("slave_ns.txt");
  ASSERT_EQ(mounts.size(), 20u);
  const MountInfo* root = Find(mounts, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->mount_id, 64);
  EXPECT_THAT(root->optional_fields, ElementsAre("master:1"));
  EXPECT_EQ(root->master_peer_group(), 1);
  EXPECT_EQ(root->shared_peer_group(), std::nullopt);
  EXPECT_EQ(PropagationOf(*root), Propagation::kSlave);
  const MountInfo* shm = Find(mounts, "/dev/shm");
  ASSERT_NE(shm, nullptr);
  EXPECT_EQ(shm->master_peer_group(), 18);
  for (const MountInfo& m : mounts) EXPECT_EQ(PropagationOf(m), Propagation::kSlave);
}

TEST(ParseMountInfoTest, SharedAndSlaveNamespace) {
  const std::vector<MountInfo> mounts = ParseTestdata("shared_slave_ns.txt");
  ASSERT_EQ(mounts.size(), 20u);
  const MountInfo* root = Find(mounts, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_THAT(root->optional_fields, ElementsAre("shared:21", "master:1"));
  EXPECT_EQ(root->shared_peer_group(), 21);
  EXPECT_EQ(root->master_peer_group(), 1);
  EXPECT_EQ(PropagationOf(*root), Propagation::kSharedAndSlave);
  const MountInfo* pts = Find(mounts, "/dev/pts");
  ASSERT_NE(pts, nullptr);
  EXPECT_EQ(pts->mount_id, 83);
  EXPECT_EQ(pts->shared_peer_group(), 40);
  EXPECT_EQ(pts->master_peer_group(), 20);
}

TEST(ParseMountInfoTest, EscapedPaths) {
  const std::vector<MountInfo> mounts = ParseTestdata("escaped_paths.txt");
  ASSERT_EQ(mounts.size(), 25u);
  const MountInfo* space = Find(mounts, "/tmp/rbdcsi-x y");
  ASSERT_NE(space, nullptr);
  EXPECT_EQ(space->mount_id, 63);
  EXPECT_EQ(space->root, "/tmp/rbdcsi-x y");
  EXPECT_EQ(space->major, 254u);
  EXPECT_EQ(space->fs_type, "ext4");

  const MountInfo* tab = Find(mounts, "/tmp/rbdcsi-tab\tname");
  ASSERT_NE(tab, nullptr);
  EXPECT_EQ(tab->root, "/tmp/rbdcsi-tab\tname");
  const MountInfo* newline = Find(mounts, "/tmp/rbdcsi-nl\nline");
  ASSERT_NE(newline, nullptr);
  EXPECT_EQ(newline->mount_id, 65);
  const MountInfo* backslash = Find(mounts, "/tmp/rbdcsi-back\\slash");
  ASSERT_NE(backslash, nullptr);
  EXPECT_EQ(backslash->root, "/tmp/rbdcsi-back\\slash");

  const MountInfo* inner = Find(mounts, "/tmp/rbdcsi-x y/inner dir");
  ASSERT_NE(inner, nullptr);
  EXPECT_EQ(inner->parent_id, space->mount_id);
  EXPECT_EQ(inner->root, "/tmp/rbdcsi-x y/inner dir");
}

TEST(ParseMountInfoTest, PropagateFromAndUnbindable) {
  const std::vector<MountInfo> mounts = ParseTestdata("propagate_from_chroot.txt");
  ASSERT_EQ(mounts.size(), 6u);
  EXPECT_EQ(mounts[0].root, "/tmp/rbdcsi-pf/root");
  EXPECT_EQ(mounts[0].mount_point, "/");

  const MountInfo* p = Find(mounts, "/p");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->source, "rbdcsi-p");
  EXPECT_EQ(p->shared_peer_group(), 1);
  EXPECT_EQ(PropagationOf(*p), Propagation::kShared);

  const MountInfo* r = Find(mounts, "/r");
  ASSERT_NE(r, nullptr);
  EXPECT_THAT(r->optional_fields, ElementsAre("master:2", "propagate_from:1"));
  EXPECT_EQ(r->master_peer_group(), 2);
  EXPECT_EQ(r->propagate_from_peer_group(), 1);
  EXPECT_EQ(r->shared_peer_group(), std::nullopt);
  EXPECT_EQ(PropagationOf(*r), Propagation::kSlave);

  const MountInfo* u = Find(mounts, "/u");
  ASSERT_NE(u, nullptr);
  EXPECT_THAT(u->optional_fields, ElementsAre("unbindable"));
  EXPECT_TRUE(u->is_unbindable());
  EXPECT_FALSE(r->is_unbindable());
  EXPECT_EQ(PropagationOf(*u), Propagation::kUnbindable);
}

TEST(ParseMountInfoLineTest, EmptySourceIsTwoSpaces) {
  absl::StatusOr<MountInfo> info = ParseMountInfoLine("36 35 0:50 / /mnt rw - tmpfs  rw");
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->fs_type, "tmpfs");
  EXPECT_EQ(info->source, "");
  EXPECT_EQ(info->super_options, "rw");
}

TEST(ParseMountInfoLineTest, RejectsMalformedLines) {
  const std::vector<std::string> bad = {
      "",
      "36 35 98:0 /mnt1",                                              // Truncated.
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1",                    // Truncated.
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 ext3 /dev/root rw",  // No separator.
      "36 35 98:0 /mnt1 /mnt2 rw,noatime - ext3 /dev/root",            // Short after " - ".
      "36 35 98:0 /mnt1 /mnt2 rw,noatime - ext3 /dev/root rw extra",   // Long after " - ".
      "x6 35 98:0 /mnt1 /mnt2 rw - ext3 /dev/root rw",                 // Bad mount id.
      "-36 35 98:0 /mnt1 /mnt2 rw - ext3 /dev/root rw",                // Negative.
      "+36 35 98:0 /mnt1 /mnt2 rw - ext3 /dev/root rw",                // Sign.
      "36 99999999999 98:0 /mnt1 /mnt2 rw - ext3 /dev/root rw",        // Overflow.
      "36 35 98-0 /mnt1 /mnt2 rw - ext3 /dev/root rw",                 // No ':'.
      "36 35 98: /mnt1 /mnt2 rw - ext3 /dev/root rw",                  // No minor.
      "36 35 98:0x1 /mnt1 /mnt2 rw - ext3 /dev/root rw",               // Hex minor.
      "36 35 98:0 /mnt1 /mnt2 rw  - ext3 /dev/root rw",                // Empty tag.
      "36 35 98:0 /mnt1 /mnt2 rw - ext3 /dev/root rw\n",               // Embedded newline.
  };
  for (const std::string& line : bad) {
    absl::StatusOr<MountInfo> info = ParseMountInfoLine(line);
    EXPECT_THAT(info, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")))
        << "line: " << line;
  }
}

TEST(ParseMountInfoTest, ErrorNamesLineNumber) {
  const std::string text =
      "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
      "\n"
      "22 27 0:21 / /proc rw,relatime proc proc rw\n";
  absl::StatusOr<std::vector<MountInfo>> mounts = ParseMountInfo(text);
  EXPECT_THAT(mounts, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("line 3"), HasSubstr("separator"))));
}

TEST(ParseMountInfoTest, EmptyAndUnterminatedInput) {
  absl::StatusOr<std::vector<MountInfo>> empty = ParseMountInfo("");
  ASSERT_THAT(empty, IsOk());
  EXPECT_THAT(*empty, IsEmpty());
  absl::StatusOr<std::vector<MountInfo>> one =
      ParseMountInfo("27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw");
  ASSERT_THAT(one, IsOk());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].shared_peer_group(), 1);
}

TEST(UnescapeMountFieldTest, DecodesOctalEscapes) {
  EXPECT_EQ(UnescapeMountField("/a\\040b\\011c\\012d\\134e"), "/a b\tc\nd\\e");
  EXPECT_EQ(UnescapeMountField("\\101\\102"), "AB");
  EXPECT_EQ(UnescapeMountField("/plain"), "/plain");
  EXPECT_EQ(UnescapeMountField(""), "");
}

TEST(UnescapeMountFieldTest, KeepsIncompleteOrInvalidEscapes) {
  EXPECT_EQ(UnescapeMountField("a\\"), "a\\");
  EXPECT_EQ(UnescapeMountField("a\\04"), "a\\04");
  EXPECT_EQ(UnescapeMountField("a\\048"), "a\\048");
  EXPECT_EQ(UnescapeMountField("a\\400"), "a\\400");
  EXPECT_EQ(UnescapeMountField("a\\x20"), "a\\x20");
}

TEST(PropagationTest, Names) {
  EXPECT_EQ(PropagationName(Propagation::kPrivate), "private");
  EXPECT_EQ(PropagationName(Propagation::kShared), "shared");
  EXPECT_EQ(PropagationName(Propagation::kSlave), "slave");
  EXPECT_EQ(PropagationName(Propagation::kSharedAndSlave), "shared+slave");
  EXPECT_EQ(PropagationName(Propagation::kUnbindable), "unbindable");
}

TEST(PropagationTest, IgnoresMalformedTags) {
  MountInfo m;
  m.optional_fields = {"shared:", "master:x", "sharedx:3"};
  EXPECT_EQ(m.shared_peer_group(), std::nullopt);
  EXPECT_EQ(m.master_peer_group(), std::nullopt);
  EXPECT_EQ(PropagationOf(m), Propagation::kPrivate);
}

TEST(ReadWholeFileTest, ReadsProcFilesPastStSize) {
  absl::StatusOr<std::string> text = ReadWholeFile("/proc/self/mountinfo");
  ASSERT_THAT(text, IsOk());
  EXPECT_THAT(*text, HasSubstr(" / / "));
}

TEST(ReadWholeFileTest, ReadsRegularFile) {
  absl::StatusOr<std::string> text =
      ReadWholeFile(std::string(RBDCSI_TESTDATA_DIR) + "/mountinfo/escaped_paths.txt");
  ASSERT_THAT(text, IsOk());
  EXPECT_EQ(*text, Testdata("escaped_paths.txt"));
}

TEST(ReadWholeFileTest, ReportsErrnoWithPath) {
  absl::StatusOr<std::string> missing = ReadWholeFile("/nonexistent/rbdcsi-no-such-file");
  EXPECT_THAT(missing,
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/rbdcsi-no-such-file")));
  absl::StatusOr<std::string> directory = ReadWholeFile("/");
  EXPECT_THAT(directory, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Is a directory")));
}

TEST(ReadMountInfoTest, ReadsOwnMountTable) {
  absl::StatusOr<std::vector<MountInfo>> mounts = ReadMountInfo("/proc/self/mountinfo");
  ASSERT_THAT(mounts, IsOk());
  bool has_root = false;
  for (const MountInfo& m : *mounts) has_root = has_root || m.mount_point == "/";
  EXPECT_TRUE(has_root);
}

TEST(ReadMountInfoTest, ParseErrorNamesFileAndLine) {
  const std::string path = ::testing::TempDir() + "/rbdcsi-bad-mountinfo.txt";
  {
    std::ofstream out(path);
    out << "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n27 1 254\n";
  }
  absl::StatusOr<std::vector<MountInfo>> mounts = ReadMountInfo(path);
  std::remove(path.c_str());
  EXPECT_THAT(mounts, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr(path), HasSubstr("line 2"))));
}

}  // namespace
}  // namespace rbdcsi
