// `rbdcsi doctor` on the real kernel: a kubelet-like directory (a shared mount), a volume staged
// through the real plugin, and processes in real mount namespaces with private and slave copies.
// Other tests on the machine may create namespaces too: assertions name our own pids and paths.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

using ::testing::IsEmpty;

struct DoctorRun {
  int exit_code = -1;
  nlohmann::json report;
  std::string stderr_text;
};

class DoctorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(kubelet());
    ASSERT_EQ(mount(kubelet().c_str(), kubelet().c_str(), nullptr, MS_BIND, nullptr), 0);
    bound_ = true;
  }

  void TearDown() override {
    holders_.clear();  // kills them
    if (plugin_) {
      EXPECT_EQ(plugin_->Stop(), 0) << plugin_->Stderr();
    }
    EXPECT_THAT(LoopDevicesBackedUnder(dir_.path()), IsEmpty());
    if (bound_) {
      EXPECT_EQ(umount(kubelet().c_str()), 0) << "something is still mounted under it";
    }
    EXPECT_THAT(MountsUnder(dir_.path()), IsEmpty());
    CleanUpUnder(dir_.path());
  }

  std::string kubelet() const { return dir_ / "kubelet"; }
  std::string staging() const { return dir_ / "kubelet/plugins/globalmount"; }

  void MakeShared() {
    ASSERT_EQ(mount(nullptr, kubelet().c_str(), nullptr, MS_SHARED | MS_REC, nullptr), 0);
  }

  // A process in a new mount namespace made with `propagation`, waited for until it sleeps.
  pid_t StartHolder(const std::string& propagation) {
    absl::StatusOr<std::unique_ptr<ChildProcess>> holder =
        StartNamespaceHolder(propagation, "true", dir_.path(), std::chrono::seconds(10));
    EXPECT_THAT(holder, IsOk());
    if (!holder.ok()) return -1;
    holders_.push_back(std::move(*holder));
    return holders_.back()->pid();
  }

  DoctorRun Doctor() {
    std::vector<std::string> argv = {RBDCSI_BINARY,     "doctor",  "--json",
                                     "--kubelet-dir",   kubelet(), "--rbd-program",
                                     "/nonexistent/rbd"};
    if (plugin_) {
      argv.insert(argv.end(),
                  {"--state-dir", plugin_->state_dir(), "--data-dir", plugin_->data_dir()});
    } else {
      argv.insert(argv.end(), {"--state-dir", dir_ / "no-state", "--data-dir", dir_ / "no-data"});
    }
    ChildProcess doctor(argv, dir_.path());
    DoctorRun run;
    run.exit_code = doctor.Wait(std::chrono::seconds(60)).value_or(-1);
    run.stderr_text = doctor.Stderr();
    run.report = nlohmann::json::parse(doctor.Stdout(), nullptr, false);
    return run;
  }

  // Hazards of `kind` (and, when given, of process `pid`).
  static std::vector<nlohmann::json> Hazards(const DoctorRun& run, const std::string& kind,
                                             pid_t pid = 0) {
    std::vector<nlohmann::json> found;
    if (!run.report.is_object()) return found;
    for (const nlohmann::json& h : run.report["hazards"]) {
      if (h["kind"] == kind && (pid == 0 || h.value("pid", 0) == pid)) found.push_back(h);
    }
    return found;
  }

  void StageVolume() {
    std::filesystem::create_directories(dir_ / "plugin");
    plugin_ = std::make_unique<Plugin>(RBDCSI_BINARY, dir_ / "plugin",
                                       std::vector<std::string>{"--kubelet-dir", dir_ / "kubelet"});
    std::string why;
    ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
    absl::StatusOr<std::string> id = CreateAndStage(*plugin_, "doctor", staging());
    ASSERT_TRUE(id.ok()) << id.status();
    volume_id_ = *id;
  }

  grpc::Status Unstage() { return rbdcsi::Unstage(*plugin_, volume_id_, staging()); }

  TempDir dir_{"doctor"};
  bool bound_ = false;
  std::vector<std::unique_ptr<ChildProcess>> holders_;
  std::unique_ptr<Plugin> plugin_;
  std::string volume_id_;
};

TEST_F(DoctorTest, KubeletDirThatIsNotSharedIsAHazard) {
  ASSERT_EQ(mount(nullptr, kubelet().c_str(), nullptr, MS_PRIVATE, nullptr), 0);
  DoctorRun run = Doctor();
  EXPECT_EQ(run.exit_code, 1) << run.stderr_text;
  ASSERT_EQ(Hazards(run, "kubelet-dir-not-shared").size(), 1u) << run.report.dump(2);
  EXPECT_EQ(Hazards(run, "kubelet-dir-not-shared")[0]["mount_point"], kubelet());

  MakeShared();
  run = Doctor();
  EXPECT_TRUE(Hazards(run, "kubelet-dir-not-shared").empty()) << run.report.dump(2);
}

TEST_F(DoctorTest, NamesPrivateCopiesOfTheKubeletDirAndNotSlaveOnes) {
  MakeShared();
  const pid_t private_holder = StartHolder("private");
  const pid_t slave_holder = StartHolder("slave");
  DoctorRun run = Doctor();
  EXPECT_EQ(run.exit_code, 1) << run.stderr_text;
  std::vector<nlohmann::json> mine = Hazards(run, "private-kubelet-dir-copy", private_holder);
  ASSERT_EQ(mine.size(), 1u) << run.report.dump(2);
  EXPECT_EQ(mine[0]["comm"], "sleep");
  EXPECT_EQ(mine[0]["mount_point"], kubelet());
  EXPECT_EQ(mine[0]["mount_namespace"], MountNamespaceOf(private_holder));
  EXPECT_NE(mine[0]["fix"].get<std::string>().find("HostToContainer"), std::string::npos);
  EXPECT_TRUE(Hazards(run, "private-kubelet-dir-copy", slave_holder).empty()) << run.report.dump(2);
}

TEST_F(DoctorTest, NamesTomorrowsHolderOfAStagedVolumeAndCleanStateIsClean) {
  MakeShared();
  StageVolume();
  DoctorRun run = Doctor();
  EXPECT_GE(run.report.value("volumes_checked", 0), 1) << run.report.dump(2);
  EXPECT_TRUE(Hazards(run, "private-volume-copy").empty()) << run.report.dump(2);
  EXPECT_TRUE(Hazards(run, "mapping-without-record").empty()) << run.report.dump(2);
  EXPECT_TRUE(Hazards(run, "record-without-mapping").empty()) << run.report.dump(2);

  const pid_t holder = StartHolder("private");
  run = Doctor();
  EXPECT_EQ(run.exit_code, 1);
  std::vector<nlohmann::json> found = Hazards(run, "private-volume-copy", holder);
  ASSERT_EQ(found.size(), 1u) << run.report.dump(2);
  EXPECT_EQ(found[0]["subject"], volume_id_);
  EXPECT_EQ(found[0]["mount_point"], staging());
  EXPECT_NE(found[0]["fix"].get<std::string>().find(absl::StrCat("nsenter -t ", holder)),
            std::string::npos);

  holders_.clear();
  EXPECT_TRUE(Unstage().ok());
}

TEST_F(DoctorTest, MappingWithoutRecordAndRecordWithoutMapping) {
  MakeShared();
  StageVolume();
  // Move the record away: the mapping is now unrecorded.
  const std::string volumes = plugin_->state_dir() + "/volumes";
  const std::string aside = dir_ / "aside";
  std::filesystem::rename(volumes, aside);
  std::filesystem::create_directories(volumes);
  DoctorRun run = Doctor();
  EXPECT_EQ(run.exit_code, 1);
  std::vector<nlohmann::json> unrecorded = Hazards(run, "mapping-without-record");
  ASSERT_EQ(unrecorded.size(), 1u) << run.report.dump(2);
  EXPECT_EQ(unrecorded[0]["subject"].get<std::string>().rfind("/dev/loop", 0), 0u);

  // Put it back, unmount and detach by unstaging, then restore the stale record only.
  std::filesystem::remove_all(volumes);
  std::filesystem::copy(aside, volumes);
  ASSERT_TRUE(Unstage().ok());
  std::filesystem::remove_all(volumes);
  std::filesystem::rename(aside, volumes);
  run = Doctor();
  EXPECT_EQ(run.exit_code, 1);
  std::vector<nlohmann::json> stale = Hazards(run, "record-without-mapping");
  ASSERT_EQ(stale.size(), 1u) << run.report.dump(2);
  EXPECT_EQ(stale[0]["subject"], volume_id_);
  std::filesystem::remove_all(volumes);
  std::filesystem::create_directories(volumes);
}

}  // namespace
}  // namespace rbdcsi
