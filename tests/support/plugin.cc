#include "tests/support/plugin.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rbdcsi {

Plugin::Plugin(const std::string& binary, const std::string& dir,
               const std::vector<std::string>& extra_flags)
    : dir_(dir) {
  std::vector<std::string> argv = {
      binary,        "serve",     "--endpoint", "unix://" + socket(), "--nodeid",       "test-node",
      "--state-dir", state_dir(), "--data-dir", data_dir(),           "--grace-period", "5"};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  child_ = std::make_unique<ChildProcess>(argv, dir_);
  channel_ = grpc::CreateChannel("unix:" + socket(), grpc::InsecureChannelCredentials());
  identity_ = csi::v1::Identity::NewStub(channel_);
  node_ = csi::v1::Node::NewStub(channel_);
  controller_ = csi::v1::Controller::NewStub(channel_);
}

Plugin::~Plugin() { Stop(); }

bool Plugin::WaitReady(std::string* why) {
  bool ready = WaitFor(
      [&] {
        if (!std::filesystem::exists(socket())) return false;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
        csi::v1::ProbeResponse resp;
        return identity_->Probe(&ctx, {}, &resp).ok() && resp.ready().value();
      },
      std::chrono::seconds(20));
  if (!ready && why != nullptr) *why = child_->Stderr();
  return ready;
}

int Plugin::Stop() {
  child_->Signal(SIGTERM);
  std::optional<int> code = child_->Wait(std::chrono::seconds(20));
  return code ? *code : -1;
}

std::vector<std::string> LoopDevicesBackedUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/block", ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "loop")) continue;
    std::string backing = ReadFileOrEmpty(entry.path().string() + "/loop/backing_file");
    if (absl::StartsWith(backing, dir + "/")) out.push_back("/dev/" + name);
  }
  return out;
}

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(ReadFileOrEmpty("/proc/self/mountinfo"), '\n')) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    if (fields.size() > 4 && absl::StartsWith(fields[4], dir + "/")) {
      out.emplace_back(fields[4]);
    }
  }
  return out;
}

void CleanUpUnder(const std::string& dir) {
  for (int i = 0; i < 10; ++i) {
    std::vector<std::string> mounts = MountsUnder(dir);
    if (mounts.empty()) break;
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
  }
  for (const std::string& dev : LoopDevicesBackedUnder(dir)) {
    int fd = open(dev.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ioctl(fd, LOOP_CLR_FD, 0);
    close(fd);
  }
}

}  // namespace rbdcsi
