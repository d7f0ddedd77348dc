// tests/rbd/fake_rbd: a test double for the `rbd` CLI's kernel-device commands, backed by loop
// devices.
//
//   rbd device map POOL/IMAGE --id USER -m MONITORS --keyfile FILE [--read-only] [-o OPTIONS]
//   rbd device unmap [-o OPTIONS] DEVICE|POOL/IMAGE
//   rbd device list [--format json]
//   rbd status POOL/IMAGE --format json   (every mapping of the image is a watcher)
//   rbd create POOL/IMAGE --size MIB        rbd rm POOL/IMAGE        (conveniences)
//
// State lives in $RBDCSI_FAKE_RBD_DIR: images are the files <dir>/<pool>/<image>, mappings are in
// <dir>/devices.json, and every invocation appends one JSON line to <dir>/calls.log with its own
// /proc/self/cmdline and, for `map`, the key file's path ("keyfile"), whether it was valid
// (exists, regular, mode 0600, not empty) and StableHash64 of its content in 16 hex digits
// ("keyfile_hash"; null when unreadable) and the -o value ("options"), so tests can check which key
// rbd got without logging it. Output and exit codes follow krbd's (`rbd` exits with the positive
// errno). $RBDCSI_FAKE_RBD_MAP_ERRNO=N makes `map` fail like the kernel returned -N (e.g. 110). A
// file <dir>/map_delay_ms (<dir>/unmap_delay_ms) holding N makes `map` (`unmap`) take N ms longer,
// like a slow cluster.
#ifndef RBDCSI_TESTS_RBD_FAKE_RBD_H_
#define RBDCSI_TESTS_RBD_FAKE_RBD_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rbd/loop_device.h"

namespace rbdcsi {

// Keys keep their insertion order, as in rbd's own output.
using json = nlohmann::ordered_json;

inline constexpr int kEnoent = 2;
inline constexpr int kEio = 5;
inline constexpr int kEacces = 13;
inline constexpr int kEbusy = 16;
inline constexpr int kErofs = 30;
inline constexpr int kEinval = 22;

std::string Strerror(int err);
// Prints "rbd: map failed: (2) No such file or directory" and returns rbd's exit status.
int Fail(const std::string& action, int err);

// One invocation of the fake rbd; the state lives in a directory (above).
class FakeRbd {
 public:
  FakeRbd(std::string dir, std::unique_ptr<LoopDevices> loops)
      : dir_(std::move(dir)), loops_(std::move(loops)) {}

  int Run(const std::vector<std::string>& args);
  const json& call() const { return call_; }

 private:
  // What `device map` was given.
  struct MapRequest {
    std::pair<std::string, std::string> spec;  // pool, image
    std::string keyfile;
    bool read_only = false;
  };
  int Map(const std::vector<std::string>& args);
  // Map's steps: its arguments and key file as rbd checks them, then the refusal of an
  // exclusive map of an image mapped already. Each gives 0 or rbd's exit code.
  int ParseMap(const std::vector<std::string>& args, MapRequest* req);
  int CheckNotMapped(json& table, const MapRequest& req);
  int Unmap(const std::vector<std::string>& args);
  int List(const std::vector<std::string>& args);
  int Create(const std::vector<std::string>& args);
  int Status(const std::vector<std::string>& args);
  int Remove(const std::vector<std::string>& args);

  // Splits "POOL/IMAGE" (the pool defaults to "rbd", as in rbd).
  static std::optional<std::pair<std::string, std::string>> ParseSpec(const std::string& spec);
  std::string ImagePath(const std::string& pool, const std::string& image) const {
    return absl::StrCat(dir_, "/", pool, "/", image);
  }
  bool CheckKeyFile(const std::string& path);
  // Sleeps as many milliseconds as the file <dir>/`file` says (none without it).
  void Delay(const std::string& file) const;
  json LoadTable();
  void SaveTable(const json& table);
  // Drops mappings whose loop device is no longer attached to their image.
  void Reconcile(json& table);

  std::string dir_;
  std::unique_ptr<LoopDevices> loops_;
  json call_ = json::object();
};

// This process's command line, NULs as spaces.
std::string OwnCmdline();
// Appends one JSON line to <dir>/calls.log.
void AppendCallLog(const std::string& dir, const json& call);

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_RBD_FAKE_RBD_H_
