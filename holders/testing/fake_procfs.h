// A stateful fake of /proc and /sys for holder-scan unit tests: processes, threads with their own
// mount namespaces, per-namespace mount tables, open files, stacked devices, swaps, and mount
// namespaces the kernel knows about that have no process. It counts reads so tests can check
// that each namespace's table is read once.
#ifndef RBDCSI_HOLDERS_TESTING_FAKE_PROCFS_H_
#define RBDCSI_HOLDERS_TESTING_FAKE_PROCFS_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "holders/procfs.h"

namespace rbdcsi {

class FakeProcFs : public ProcFs {
 public:
  struct Process {
    uint64_t ns = 0;
    std::map<pid_t, uint64_t> threads;  // Other threads: tid -> their mount namespace.
    std::string comm = "sleep";
    std::string cmdline = std::string(
        "sleep\0"
        "1000\0",
        11);
    std::string cgroup = "0::/user.slice\n";
    std::string stat_flags = "4194304";  // /proc/PID/stat field 9.
    char state = 'S';
    bool kernel_thread = false;  // No executable; cwd and root on the host's "/".
    std::vector<std::pair<ProcessFile, std::string>> files;  // With the path readlink shows.
  };

  pid_t self = 1;
  std::map<pid_t, Process> processes;
  std::map<uint64_t, std::string> mountinfo;  // Namespace inode -> its mountinfo text.
  std::vector<DeviceNumber> partitions;
  std::vector<StackedDevice> stacked;
  std::string swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
  std::map<std::string, ProcessFile> paths;  // For StatPath.
  DeviceNumber nsfs{0, 4};
  bool kernel_iteration = true;
  std::map<uint64_t, uint64_t> kernel_ids;          // Namespace inode -> kernel id.
  std::map<std::string, uint64_t> namespace_files;  // Bind-mounted nsfs file -> namespace.

  std::vector<pid_t> ghosts;  // Listed in /proc, gone by the time anything else is read.

  std::map<uint64_t, int> mountinfo_reads;  // Per namespace.
  std::vector<std::pair<pid_t, pid_t>> mountinfo_reads_by_task;
  int thread_listings = 0;

  // Adds process `pid` in namespace `ns`; returns it for further set-up.
  Process& Add(pid_t pid, uint64_t ns) {
    Process& p = processes[pid];
    p.ns = ns;
    return p;
  }

  pid_t SelfPid() override { return self; }

  absl::Status ListProcesses(std::vector<pid_t>* pids) override {
    pids->clear();
    for (const auto& [pid, p] : processes) pids->push_back(pid);
    pids->insert(pids->end(), ghosts.begin(), ghosts.end());
    return absl::OkStatus();
  }

  absl::StatusOr<int> ThreadCount(pid_t pid) override {
    ASSIGN_OR_RETURN(const Process* p, Find(pid));
    return 1 + static_cast<int>(p->threads.size());
  }

  absl::Status ListThreads(pid_t pid, std::vector<pid_t>* tids) override {
    ++thread_listings;
    ASSIGN_OR_RETURN(const Process* p, Find(pid));
    tids->assign({pid});
    for (const auto& [tid, ns] : p->threads) tids->push_back(tid);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> MountNamespaceOf(pid_t pid, pid_t tid) override {
    ASSIGN_OR_RETURN(const Process* p, Find(pid));
    if (tid == 0 || tid == pid) return p->ns;
    auto it = p->threads.find(tid);
    if (it == p->threads.end()) return absl::NotFoundError("no such thread");
    return it->second;
  }

  absl::Status ReadMountInfo(pid_t pid, pid_t tid, std::string* text) override {
    ASSIGN_OR_RETURN(const uint64_t ns, MountNamespaceOf(pid, tid));
    ++mountinfo_reads[ns];
    mountinfo_reads_by_task.emplace_back(pid, tid);
    auto it = mountinfo.find(ns);
    *text = it == mountinfo.end() ? "" : it->second;
    return absl::OkStatus();
  }

  absl::Status ListProcessFiles(pid_t pid, std::vector<ProcessFile>* files) override {
    ASSIGN_OR_RETURN(const Process* p, Find(pid));
    files->clear();
    for (const auto& [f, path] : p->files) files->push_back(f);
    if (!p->kernel_thread) {
      ProcessFile exe;
      exe.slot = ProcessFile::Slot::kExe;
      exe.dev = {253, 0};
      files->push_back(exe);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> FilePath(pid_t pid, const ProcessFile& file) override {
    ASSIGN_OR_RETURN(const Process* p, Find(pid));
    for (const auto& [f, path] : p->files) {
      if (f.slot == file.slot && f.fd == file.fd) return path;
    }
    return absl::NotFoundError("no such file");
  }

  absl::StatusOr<std::string> ReadProcessFile(pid_t pid, std::string_view name) override {
    ASSIGN_OR_RETURN(const Process* p, Find(pid));
    if (name == "comm") return p->comm + "\n";
    if (name == "cmdline") return p->cmdline;
    if (name == "cgroup") return p->cgroup;
    if (name == "stat") {
      return absl::StrCat(pid, " (", p->comm, ") ", std::string(1, p->state), " 1 1 1 0 -1 ",
                          p->stat_flags, " 0 0 0 0\n");
    }
    return absl::NotFoundError("no such file");
  }

  absl::StatusOr<std::vector<DeviceNumber>> ListPartitions(DeviceNumber) override {
    return partitions;
  }

  absl::StatusOr<std::vector<StackedDevice>> ListStackedDevices(DeviceNumber) override {
    return stacked;
  }

  absl::StatusOr<std::string> ReadSwaps() override { return swaps; }

  absl::StatusOr<ProcessFile> StatPath(const std::string& path) override {
    auto it = paths.find(path);
    if (it == paths.end()) return absl::NotFoundError(path);
    return it->second;
  }

  absl::StatusOr<DeviceNumber> NsfsDevice() override { return nsfs; }

  absl::StatusOr<std::vector<KernelMountNamespace>> ListMountNamespaces() override {
    if (!kernel_iteration) return absl::UnimplementedError("no NS_MNT_GET_NEXT in this kernel");
    std::vector<KernelMountNamespace> all;
    for (const auto& [ns, text] : mountinfo) all.push_back({ns, ns + 1000, 0});
    return all;
  }

  absl::StatusOr<std::vector<MountInfo>> ListNamespaceMounts(
      const KernelMountNamespace& ns, const std::vector<DeviceNumber>& devices) override {
    ++mountinfo_reads[ns.inode];
    ASSIGN_OR_RETURN(std::vector<MountInfo> all, ParseMountInfo(mountinfo[ns.inode]));
    std::vector<MountInfo> matching;
    for (MountInfo& m : all) {
      for (const DeviceNumber& d : devices) {
        if (d.major == m.major && d.minor == m.minor) {
          matching.push_back(std::move(m));
          break;
        }
      }
    }
    return matching;
  }

  absl::Status ReadMountInfoOfNamespaceFile(const std::string& ns_file,
                                            std::string* text) override {
    auto it = namespace_files.find(ns_file);
    if (it == namespace_files.end()) return absl::NotFoundError(ns_file);
    ++mountinfo_reads[it->second];
    *text = mountinfo[it->second];
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<const Process*> Find(pid_t pid) const {
    auto it = processes.find(pid);
    if (it == processes.end()) return absl::NotFoundError(absl::StrCat("no process ", pid));
    return &it->second;
  }
};

inline ProcessFile FdOn(int fd, DeviceNumber dev, DeviceNumber rdev, bool block) {
  ProcessFile f;
  f.slot = ProcessFile::Slot::kFd;
  f.fd = fd;
  f.dev = dev;
  f.rdev = rdev;
  f.block_device = block;
  return f;
}

inline ProcessFile SlotOn(ProcessFile::Slot slot, DeviceNumber dev) {
  ProcessFile f;
  f.slot = slot;
  f.dev = dev;
  return f;
}

}  // namespace rbdcsi

#endif  // RBDCSI_HOLDERS_TESTING_FAKE_PROCFS_H_
