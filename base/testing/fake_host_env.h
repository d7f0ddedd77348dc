// An in-memory HostEnv: a file tree of paths, filesystem usages by path and a manual clock that
// only moves when told to (SleepFor advances it). Thread-safe, as HostEnv promises.
#ifndef RBDCSI_BASE_TESTING_FAKE_HOST_ENV_H_
#define RBDCSI_BASE_TESTING_FAKE_HOST_ENV_H_

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/host_env.h"
#include "base/status.h"

namespace rbdcsi {

class FakeHostEnv : public HostEnv {
 public:
  FakeHostEnv() { files_["/"].type = FileType::kDirectory; }

  std::chrono::steady_clock::time_point Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void SleepFor(std::chrono::nanoseconds d) override { Advance(d); }
  void Advance(std::chrono::nanoseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
  }

  absl::StatusOr<FileInfo> Stat(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    return it->second;
  }
  absl::Status MakeDir(const std::string& path, mode_t) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (files_.count(path) != 0) return absl::AlreadyExistsError(path + " exists");
    if (!IsDirLocked(Dirname(path))) return absl::NotFoundError(Dirname(path) + " is missing");
    files_[path].type = FileType::kDirectory;
    return absl::OkStatus();
  }
  absl::Status MakeDirs(const std::string& path, mode_t mode) override {
    if (path.empty() || path == "/" || Stat(path).ok()) return absl::OkStatus();
    RETURN_IF_ERROR(MakeDirs(Dirname(path), mode));
    return MakeDir(path, mode);
  }
  absl::Status CreateFile(const std::string& path, mode_t) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (files_.count(path) != 0) return absl::OkStatus();
    if (!IsDirLocked(Dirname(path))) return absl::NotFoundError(Dirname(path) + " is missing");
    files_[path].type = FileType::kRegular;
    return absl::OkStatus();
  }
  absl::Status Remove(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    removed_.push_back(path);
    if (files_.count(path) == 0) return absl::OkStatus();
    if (busy_.count(path) != 0) return BusyError(absl::StrCat("removing ", path, ": busy"));
    for (const auto& [p, info] : files_) {
      if (absl::StartsWith(p, path + "/"))
        return absl::FailedPreconditionError(path + " not empty");
    }
    files_.erase(path);
    return absl::OkStatus();
  }
  absl::StatusOr<FsUsage> StatFs(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = usage_.find(path);
    if (it == usage_.end()) return absl::NotFoundError(absl::StrCat("statfs of ", path));
    return it->second;
  }
  absl::StatusOr<uint64_t> BlockDeviceSize(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(path);
    if (it == files_.end() || it->second.type != FileType::kBlockDevice) {
      return absl::NotFoundError(absl::StrCat(path, " is not a block device"));
    }
    return it->second.size;
  }

  // Test set-up. Parents are not checked.
  void AddFile(const std::string& path, FileInfo info) {
    std::lock_guard<std::mutex> lock(mu_);
    files_[path] = info;
  }
  void SetUsage(const std::string& path, FsUsage usage) {
    std::lock_guard<std::mutex> lock(mu_);
    usage_[path] = usage;
  }
  // Remove(path) fails as rmdir of a mount point does.
  void SetBusy(const std::string& path, bool busy) {
    std::lock_guard<std::mutex> lock(mu_);
    if (busy)
      busy_.insert(path);
    else
      busy_.erase(path);
  }
  bool Exists(const std::string& path) { return Stat(path).ok(); }
  std::vector<std::string> removed() {
    std::lock_guard<std::mutex> lock(mu_);
    return removed_;
  }

 private:
  bool IsDirLocked(const std::string& path) const {
    auto it = files_.find(path);
    return it != files_.end() && it->second.type == FileType::kDirectory;
  }

  std::mutex mu_;
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
  std::map<std::string, FileInfo> files_;
  std::map<std::string, FsUsage> usage_;
  std::set<std::string> busy_;
  std::vector<std::string> removed_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_TESTING_FAKE_HOST_ENV_H_
