// `rbdcsi gc` on the real kernel: loop devices of the loop mapper's images left without a record
// (as a lost state directory leaves them), one for each reason gc must keep a device, and one
// orphan it must unmap; a loop device of a file outside the plugin's images is never touched.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "driver/volume_record.h"
#include "gtest/gtest.h"
#include "rbd/loop_device.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

struct GcRun {
  int exit_code = -1;
  std::string out, err;
};

class GcIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "state/volumes");
    fs::create_directories(dir_ / "data/images/rbd");
    fs::create_directories(dir_ / "mnt");
    for (const char* name : {"recorded", "mounted", "open", "orphan"}) {
      devices_[name] = Attach(dir_ / absl::StrCat("data/images/rbd/", name, ".img"));
    }
    foreign_ = Attach(dir_ / "foreign.img");  // not one of the plugin's images
  }

  void TearDown() override {
    holder_.reset();
    if (fd_ >= 0) close(fd_);
    devices_["foreign"] = foreign_;
    for (const auto& [name, device] : devices_) {
      const std::string backing = LoopAttribute(device, "backing_file");
      if (backing.empty()) continue;
      // The mount namespace goes with its last process, asynchronously: wait for the release.
      EXPECT_TRUE(
          WaitFor([&] { return loops_->Detach(device, backing).ok(); }, std::chrono::seconds(10)))
          << name;
    }
    CleanUpUnder(dir_.path());
  }

  std::string Attach(const std::string& file) {
    std::ofstream(file).close();
    fs::resize_file(file, 8 << 20);
    absl::StatusOr<std::string> dev = loops_->Attach(file, false);
    EXPECT_TRUE(dev.ok()) << dev.status();
    return dev.value_or("");
  }

  GcRun Gc(std::vector<std::string> extra, const std::string& state_dir = "") {
    std::vector<std::string> argv = {
        RBDCSI_BINARY, "gc",          "--state-dir", state_dir.empty() ? dir_ / "state" : state_dir,
        "--data-dir",  dir_ / "data", "--fuse-dir",  dir_ / "fuse"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ChildProcess gc(argv, dir_.path());
    GcRun run;
    run.exit_code = gc.Wait(std::chrono::seconds(60)).value_or(-1);
    run.out = gc.Stdout();
    run.err = gc.Stderr();
    return run;
  }

  // The table line of `device`.
  static std::string Line(const GcRun& run, const std::string& device) {
    const size_t at = run.out.find(device + "\t");
    return at == std::string::npos ? "" : run.out.substr(at, run.out.find('\n', at) - at);
  }

  bool Attached(const std::string& device) {
    return !LoopAttribute(device, "backing_file").empty();
  }

  TempDir dir_{"gc"};
  std::unique_ptr<LoopDevices> loops_ = NewRealLoopDevices();
  std::map<std::string, std::string> devices_;
  std::string foreign_;
  std::unique_ptr<ChildProcess> holder_;
  int fd_ = -1;
};

// Long (64 lines) on purpose: one story over one set of devices (a dry run, then the first and
// the second sighting across the grace period), whose steps depend on the ones before.
TEST_F(GcIntegrationTest, UnmapsOnlyTheFreeOrphanOfItsOwnMapperAfterTheGrace) {
  // recorded: a volume record (an unfinished stage) names its image.
  VolumeRecord r;
  r.volume_id = "rbd/recorded";
  r.mapper = "loop";
  r.image = ImageSpec("rbd", "recorded");
  r.step = StageStep::kMapping;
  ASSERT_THAT(RecordStore(dir_ / "state/volumes").Save(r), IsOk());
  // mounted: only inside another mount namespace (the host's table does not show it).
  ChildProcess mkfs({"mkfs.ext4", "-q", devices_["mounted"]}, dir_.path());
  ASSERT_EQ(mkfs.Wait(std::chrono::seconds(60)), 0) << mkfs.Stderr();
  holder_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{
          "unshare", "--mount", "--propagation", "private", "sh", "-c",
          absl::StrCat("mount ", devices_["mounted"], " ", dir_ / "mnt", " && exec sleep 600")},
      dir_.path());
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFileOrEmpty(absl::StrCat("/proc/", holder_->pid(), "/comm")) == "sleep\n"; },
      std::chrono::seconds(20)));
  EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
  // open: a process has it open.
  fd_ = open(devices_["open"].c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd_, 0);

  // First sighting: the orphan is younger than the grace period. The dry run remembers nothing.
  GcRun dry = Gc({"--grace", "600", "--dry-run"});
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
  std::cout << dry.out;
  EXPECT_THAT(Line(dry, devices_["recorded"]),
              HasSubstr("keep\trecorded: the record of volume rbd/recorded (step mapping)"));
  EXPECT_THAT(Line(dry, devices_["mounted"]), HasSubstr("keep\theld: "));
  EXPECT_THAT(Line(dry, devices_["mounted"]), HasSubstr("mount namespace"));
  EXPECT_THAT(Line(dry, devices_["open"]), HasSubstr("keep\theld: "));
  EXPECT_THAT(Line(dry, devices_["open"]), HasSubstr(absl::StrCat("pid ", getpid())));
  EXPECT_THAT(Line(dry, devices_["orphan"]), HasSubstr("keep\tyoung: without a record for 0 s"));
  EXPECT_THAT(dry.out, Not(HasSubstr(foreign_ + "\t")));
  EXPECT_FALSE(fs::exists(dir_ / "state/gc-seen.json"));

  // A dry run with no grace says what it would unmap, and unmaps nothing.
  GcRun would = Gc({"--grace", "0", "--dry-run"});
  EXPECT_THAT(Line(would, devices_["orphan"]), HasSubstr("would-unmap\torphan: no record"));
  EXPECT_THAT(would.out, HasSubstr(" device(s); 1 would be unmapped"));
  for (const auto& [name, device] : devices_) EXPECT_TRUE(Attached(device)) << name;

  // A real run remembers the first sighting; once that is older than the grace, it unmaps.
  GcRun first = Gc({"--grace", "600"});
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_THAT(Line(first, devices_["orphan"]), HasSubstr("keep\tyoung"));
  std::string seen = ReadFileOrEmpty(dir_ / "state/gc-seen.json");
  const std::string key = absl::StrCat("loop ", devices_["orphan"]);
  ASSERT_THAT(seen, HasSubstr(key));
  std::ofstream(dir_ / "state/gc-seen.json")
      << "{\"" << seen.substr(seen.find(key), seen.find('"', seen.find(key)) - seen.find(key))
      << "\": " << time(nullptr) - 700 << "}\n";
  GcRun second = Gc({"--grace", "600"});
  EXPECT_EQ(second.exit_code, 0) << second.err << second.out;
  EXPECT_THAT(Line(second, devices_["orphan"]), HasSubstr("unmapped\torphan: no record"));
  EXPECT_THAT(second.out, HasSubstr(" device(s); 1 unmapped (1 done)"));
  EXPECT_FALSE(Attached(devices_["orphan"]));
  for (const char* kept : {"recorded", "mounted", "open"}) {
    EXPECT_TRUE(Attached(devices_[kept])) << kept;
  }
  EXPECT_TRUE(Attached(foreign_));
}

TEST_F(GcIntegrationTest, RefusesWhileServeHoldsTheStateDirectory) {
  const std::string lock = dir_ / "state/lock";
  int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  ASSERT_EQ(write(fd, "4242 serve\n", 11), 11);
  GcRun run = Gc({"--grace", "0"});
  close(fd);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("is in use by another rbdcsi serve (pid 4242)"));
  EXPECT_TRUE(Attached(devices_["orphan"]));

  // Nor does it run on a directory that is not a state directory (a mistyped --state-dir).
  GcRun wrong = Gc({"--grace", "0"}, dir_ / "data");
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_THAT(wrong.err, HasSubstr("is not the state directory"));
  EXPECT_TRUE(Attached(devices_["orphan"]));
}

}  // namespace
}  // namespace rbdcsi
