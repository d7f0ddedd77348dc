// Issue 8, crash injection: the real server is SIGKILLed at every named fault point of stage and
// unstage (base/fault_point.h), restarted, and called again the way kubelet does (the same RPC)
// or with the opposite RPC. After each: the right end state and no device, mount, record or
// child process left. Prints the table of points x outcomes. Root only; real loop devices. The
// krbd mapper's points are reached while a slow `rbd device map`/`unmap` child runs
// (tests/rbd/fake_rbd on loop devices, delayed): the child must die with the server.
#include <dirent.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/support/plugin.h"
#include "tests/support/test_support.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;
using ::testing::IsEmpty;

constexpr const char* kStagePoints[] = {"stage:record-mapping", "stage:mapped", "run:mkfs.ext4",
                                        "stage:formatted", "stage:mounted"};
constexpr const char* kUnstagePoints[] = {"undo:unmounted", "undo:record-unmounted",
                                          "undo:unmapped"};
// How long the fake rbd's map and unmap take: the server is killed while they run.
constexpr char kSlowChildMs[] = "1500";

csi::v1::VolumeCapability Ext4() {
  csi::v1::VolumeCapability cap;
  cap.mutable_mount()->set_fs_type("ext4");
  cap.mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  return cap;
}

// The processes whose parent chain leads to `root`.
std::vector<pid_t> Descendants(pid_t root) {
  std::map<pid_t, pid_t> parent;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2) {
      parent[std::stoi(name)] = ppid;
    }
  }
  std::vector<pid_t> out;
  for (const auto& [pid, ppid] : parent) {
    for (pid_t p = ppid; p > 1 && parent.count(p); p = parent[p]) {
      if (p == root) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

struct Row {
  std::string point, then, outcome;
};
std::vector<Row>& Table() {
  static std::vector<Row> rows;
  return rows;
}

class CrashTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    std::cout << "\ncrash table (point x call after the restart -> outcome)\n";
    for (const Row& r : Table()) {
      std::cout << absl::StrFormat("  %-22s %-30s %s\n", r.point, r.then, r.outcome);
    }
  }

  void Start(const std::string& dir, const std::string& point) {
    if (point.empty()) {
      unsetenv("RBDCSI_FAULT_POINT");
    } else {
      setenv("RBDCSI_FAULT_POINT", point.c_str(), 1);
    }
    std::vector<std::string> flags;
    if (krbd_) flags = {"--rbd-program", dir + "/bin/rbd", "--key-dir", dir + "/keys"};
    plugin_ = std::make_unique<Plugin>(RBDCSI_BINARY, dir, flags);
    unsetenv("RBDCSI_FAULT_POINT");
    std::string why;
    ASSERT_TRUE(plugin_->WaitReady(&why)) << why;
  }

  grpc::Status Stage(const std::string& id, const std::string& staging) {
    csi::v1::NodeStageVolumeRequest req;
    req.set_volume_id(id);
    req.set_staging_target_path(staging);
    *req.mutable_volume_capability() = Ext4();
    if (krbd_) {
      auto& ctx = *req.mutable_volume_context();
      ctx["mapper"] = "krbd";
      ctx["monitors"] = "127.0.0.1:6789";
      (*req.mutable_secrets())["userID"] = "kube";
      (*req.mutable_secrets())["userKey"] = "AQBcrashTestKey==";
    }
    csi::v1::NodeStageVolumeResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return plugin_->node().NodeStageVolume(&ctx, req, &resp);
  }

  grpc::Status Unstage(const std::string& id, const std::string& staging) {
    csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id(id);
    req.set_staging_target_path(staging);
    csi::v1::NodeUnstageVolumeResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return plugin_->node().NodeUnstageVolume(&ctx, req, &resp);
  }

  std::string CreateVolume(const std::string& name) {
    if (krbd_) {
      ChildProcess create({RBDCSI_FAKE_RBD_PATH, "create", "rbd/" + name, "--size", "32"},
                          std::getenv("RBDCSI_FAKE_RBD_DIR"));
      EXPECT_EQ(create.Wait(std::chrono::seconds(30)), 0) << create.Stderr();
      return "rbd/" + name;
    }
    csi::v1::CreateVolumeRequest req;
    req.set_name(name);
    req.mutable_capacity_range()->set_required_bytes(32 << 20);
    *req.add_volume_capabilities() = Ext4();
    csi::v1::CreateVolumeResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = plugin_->controller().CreateVolume(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.volume().volume_id();
  }

  // Runs `rpc` on a thread, waits for the server to stop at `point`, SIGKILLs it there, and
  // checks that no child of it survives. False when the point was never reached.
  bool KillAt(const std::string& point, const std::function<grpc::Status()>& rpc) {
    grpc::Status interrupted;
    std::thread call([&] { interrupted = rpc(); });
    const std::string marker = absl::StrCat("fault point ", point, " reached");
    const bool reached =
        WaitFor([&] { return plugin_->Stderr().find(marker) != std::string::npos; },
                std::chrono::seconds(30));
    const std::vector<pid_t> children = Descendants(plugin_->pid());
    plugin_->Kill();
    call.join();
    EXPECT_TRUE(reached) << point << " was not reached: " << interrupted.error_message();
    EXPECT_FALSE(interrupted.ok()) << point;
    EXPECT_TRUE(WaitFor(
        [&] {
          for (pid_t c : children) {
            if (kill(c, 0) == 0) return false;
          }
          return true;
        },
        std::chrono::seconds(5)))
        << point << ": a child of the killed server survived";
    return reached;
  }

  // One crash: the first call is killed at `point`; after a restart `then` runs. Returns the
  // outcome for the table.
  std::string Scenario(const std::string& point, bool unstage_point, bool opposite) {
    TempDir dir("crash");
    const std::string cluster = dir / "cluster";
    if (krbd_) {
      fs::create_directories(cluster);
      fs::create_directories(dir / "bin");
      fs::create_symlink(RBDCSI_FAKE_RBD_PATH, dir / "bin/rbd");  // so the point says "rbd"
      setenv("RBDCSI_FAKE_RBD_DIR", cluster.c_str(), 1);
    }
    auto slow = [&](bool on) {
      for (const char* file : {"/map_delay_ms", "/unmap_delay_ms"}) {
        if (on) std::ofstream(cluster + file) << kSlowChildMs;
        if (!on) fs::remove(cluster + file);
      }
    };
    Start(dir.path(), point);
    const std::string id = CreateVolume(absl::StrCat("v", Table().size()));
    const std::string staging = dir / "kubelet/plugins/gm";
    fs::create_directories(dir / "kubelet/plugins");
    if (unstage_point) {
      EXPECT_TRUE(Stage(id, staging).ok());
    }
    if (krbd_) slow(true);
    const bool reached =
        KillAt(point, [&] { return unstage_point ? Unstage(id, staging) : Stage(id, staging); });
    if (krbd_) {
      slow(false);
      // The slow child was killed, not left to finish: it never logged its call (at its end).
      const std::string verb = point.substr(point.rfind(' ') + 1);
      EXPECT_EQ(ReadFileOrEmpty(cluster + "/calls.log").find("\"device\",\"" + verb + "\""),
                std::string::npos)
          << point << ": the killed rbd child finished";
    }
    Start(dir.path(), "");
    std::string outcome = reached ? "" : "point not reached; ";
    auto call = [&](bool stage) {
      grpc::Status st = stage ? Stage(id, staging) : Unstage(id, staging);
      EXPECT_TRUE(st.ok()) << point << (stage ? " stage: " : " unstage: ") << st.error_message();
      absl::StrAppend(&outcome, stage ? "stage " : "unstage ", st.ok() ? "OK" : st.error_message(),
                      "; ");
    };
    // Kubelet repeats the interrupted call; the opposite call must work just as well. With a
    // slow child, both: the same call, then the opposite.
    const bool first_is_stage = unstage_point == opposite;
    call(first_is_stage);
    if (krbd_ && !first_is_stage) call(true);
    if (first_is_stage || krbd_) call(false);
    // The end state: nothing of the volume left on the node.
    const auto loops = LoopDevicesBackedUnder(dir.path());
    const auto mounts = MountsUnder(dir.path());
    const bool records_empty = fs::is_empty(plugin_->state_dir() + "/volumes");
    EXPECT_THAT(loops, IsEmpty()) << point;
    EXPECT_THAT(mounts, IsEmpty()) << point;
    EXPECT_TRUE(records_empty) << point;
    absl::StrAppend(&outcome, loops.empty() && mounts.empty() && records_empty
                                  ? "clean"
                                  : absl::StrCat("LEFT ", loops.size(), " devices, ", mounts.size(),
                                                 " mounts, records"));
    EXPECT_EQ(plugin_->Stop(), 0);
    CleanUpUnder(dir.path());
    unsetenv("RBDCSI_FAKE_RBD_DIR");
    return outcome;
  }

  std::unique_ptr<Plugin> plugin_;
  bool krbd_ = false;
};

TEST_F(CrashTest, EveryStagePointThenTheSameCallOrTheOpposite) {
  for (const char* point : kStagePoints) {
    for (bool opposite : {false, true}) {
      const std::string then = opposite ? "unstage" : "stage again, unstage";
      Table().push_back({point, then, Scenario(point, false, opposite)});
    }
  }
}

TEST_F(CrashTest, EveryUnstagePointThenTheSameCallOrTheOpposite) {
  for (const char* point : kUnstagePoints) {
    for (bool opposite : {false, true}) {
      const std::string then = opposite ? "stage, unstage" : "unstage again";
      Table().push_back({point, then, Scenario(point, true, opposite)});
    }
  }
}

TEST_F(CrashTest, WhileASlowRbdMapOrUnmapRunsThenTheSameCallAndTheOpposite) {
  krbd_ = true;
  Table().push_back(
      {"run:rbd device map", "stage again, unstage", Scenario("run:rbd device map", false, false)});
  Table().push_back({"run:rbd device unmap", "unstage again, stage, unstage",
                     Scenario("run:rbd device unmap", true, false)});
}

}  // namespace
}  // namespace rbdcsi
