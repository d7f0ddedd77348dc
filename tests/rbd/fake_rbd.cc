// A test double for the `rbd` CLI's kernel-device commands, backed by loop devices.
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
// file <dir>/map_delay_ms holding N makes `map` take N ms longer, like a slow cluster.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/fd.h"
#include "base/file_util.h"
#include "base/hash.h"
#include "base/status.h"
#include "rbd/loop_device.h"

namespace rbdcsi {
namespace {

// Keys keep their insertion order, as in rbd's own output.
using json = nlohmann::ordered_json;

constexpr int kEnoent = 2;
constexpr int kEio = 5;
constexpr int kEacces = 13;
constexpr int kEbusy = 16;
constexpr int kErofs = 30;
constexpr int kEinval = 22;

std::string Strerror(int err) { return std::strerror(err); }

// "rbd: map failed: (2) No such file or directory" and rbd's exit status.
int Fail(const std::string& action, int err) {
  std::cerr << "rbd: " << action << " failed: (" << err << ") " << Strerror(err) << std::endl;
  return err;
}

class FakeRbd {
 public:
  FakeRbd(std::string dir, std::unique_ptr<LoopDevices> loops)
      : dir_(std::move(dir)), loops_(std::move(loops)) {}

  int Run(const std::vector<std::string>& args);
  const json& call() const { return call_; }

 private:
  int Map(const std::vector<std::string>& args);
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
  json LoadTable();
  void SaveTable(const json& table);
  // Drops mappings whose loop device is no longer attached to their image.
  void Reconcile(json& table);

  std::string dir_;
  std::unique_ptr<LoopDevices> loops_;
  json call_ = json::object();
};

std::optional<std::pair<std::string, std::string>> FakeRbd::ParseSpec(const std::string& spec) {
  const size_t slash = spec.find('/');
  std::pair<std::string, std::string> out{"rbd", spec};
  if (slash != std::string::npos) out = {spec.substr(0, slash), spec.substr(slash + 1)};
  if (out.first.empty() || out.second.empty() || out.second.find('/') != std::string::npos ||
      out.second.find('@') != std::string::npos || out.first[0] == '.' || out.second[0] == '.') {
    return std::nullopt;
  }
  return out;
}

bool FakeRbd::CheckKeyFile(const std::string& path) {
  struct stat st;
  bool valid = stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
               (st.st_mode & 07777) == 0600 && st.st_size > 0;
  call_["keyfile_valid"] = valid;
  // What rbd would read as the key; only its hash is logged, never the key itself.
  absl::StatusOr<std::string> key = ReadSmallFile(path);
  call_["keyfile_hash"] = nullptr;
  if (key.ok()) {
    call_["keyfile_hash"] = absl::StrCat(absl::Hex(StableHash64(*key), absl::kZeroPad16));
  }
  return valid;
}

json FakeRbd::LoadTable() {
  absl::StatusOr<std::string> text = ReadSmallFile(absl::StrCat(dir_, "/devices.json"));
  json table = text.ok() ? json::parse(*text, nullptr, false) : json();
  if (!table.is_object()) table = {{"next_id", 0}, {"devices", json::array()}};
  return table;
}

void FakeRbd::SaveTable(const json& table) {
  const std::string path = absl::StrCat(dir_, "/devices.json");
  const std::string temp = path + ".tmp";
  const std::string text = table.dump(2) + "\n";
  UniqueFd fd(open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid() ||
      write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      rename(temp.c_str(), path.c_str()) != 0) {
    std::cerr << "rbd (fake): cannot write " << path << ": " << Strerror(errno) << std::endl;
    std::exit(kEio);
  }
}

void FakeRbd::Reconcile(json& table) {
  absl::StatusOr<std::vector<LoopInfo>> attached = loops_->List();
  if (!attached.ok()) return;
  json kept = json::array();
  for (const json& entry : table["devices"]) {
    for (const LoopInfo& info : *attached) {
      if (info.device == entry["device"] &&
          info.backing_file == CanonicalPath(entry["backing"].get<std::string>())) {
        kept.push_back(entry);
        break;
      }
    }
  }
  table["devices"] = kept;
}

int FakeRbd::Run(const std::vector<std::string>& args) {
  if (args.size() >= 2 && args[0] == "device") {
    std::vector<std::string> rest(args.begin() + 2, args.end());
    if (args[1] == "map") return Map(rest);
    if (args[1] == "unmap") return Unmap(rest);
    if (args[1] == "list") return List(rest);
  }
  if (!args.empty() && args[0] == "create") return Create({args.begin() + 1, args.end()});
  if (!args.empty() && args[0] == "status") return Status({args.begin() + 1, args.end()});
  if (!args.empty() && args[0] == "rm") return Remove({args.begin() + 1, args.end()});
  std::cerr << "rbd: error parsing command" << std::endl;
  return kEinval;
}

int FakeRbd::Map(const std::vector<std::string>& args) {
  std::string spec_text, keyfile;
  bool read_only = false;
  bool have_id = false, have_mon = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--read-only") {
      read_only = true;
    } else if ((a == "--id" || a == "-m" || a == "--keyfile" || a == "-o") && has_value) {
      const std::string& value = args[++i];
      if (a == "--keyfile") keyfile = value;
      if (a == "-o") call_["options"] = value;
      have_id |= a == "--id";
      have_mon |= a == "-m";
    } else if (!a.empty() && a[0] != '-' && spec_text.empty()) {
      spec_text = a;
    } else {
      std::cerr << "rbd: unrecognised option '" << a << "'" << std::endl;
      return kEinval;
    }
  }
  std::optional<std::pair<std::string, std::string>> spec = ParseSpec(spec_text);
  if (!spec.has_value() || !have_id || !have_mon || keyfile.empty()) {
    std::cerr << "rbd (fake): map needs POOL/IMAGE, --id, -m and --keyfile" << std::endl;
    return kEinval;
  }
  call_["keyfile"] = keyfile;
  struct stat st;
  if (stat(keyfile.c_str(), &st) != 0) {
    call_["keyfile_valid"] = false;
    call_["keyfile_hash"] = nullptr;
    std::cerr << "rbd: failed to get secret" << std::endl;
    return Fail("map", kEnoent);
  }
  if (!CheckKeyFile(keyfile)) {
    std::cerr << "rbd (fake): key file " << keyfile << " is not a non-empty 0600 file" << std::endl;
    return Fail("map", kEacces);
  }
  const std::string backing = ImagePath(spec->first, spec->second);
  int delay_ms = 0;
  absl::StatusOr<std::string> delay = ReadSmallFile(absl::StrCat(dir_, "/map_delay_ms"));
  if (delay.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*delay), &delay_ms) &&
      delay_ms > 0) {
    usleep(static_cast<useconds_t>(delay_ms) * 1000);
  }
  int forced = 0;
  if (const char* e = getenv("RBDCSI_FAKE_RBD_MAP_ERRNO"); e != nullptr) {
    if (!absl::SimpleAtoi(e, &forced)) forced = 0;
  }
  if (forced == 0 && stat(backing.c_str(), &st) != 0) forced = kEnoent;
  if (forced != 0) {
    std::cerr << "rbd: sysfs write failed" << std::endl;
    std::cout << "In some cases useful info is found in syslog - try \"dmesg | tail\"."
              << std::endl;
    return Fail("map", forced);
  }

  json table = LoadTable();
  Reconcile(table);
  for (const json& entry : table["devices"]) {
    if (entry["pool"] == spec->first && entry["name"] == spec->second) {
      std::cerr << "rbd: warning: image already mapped as " << entry["device"].get<std::string>()
                << std::endl;
      // krbd's exclusive option: the lock is held by the other mapping.
      if (call_.value("options", "").find("exclusive") != std::string::npos) {
        std::cerr << "rbd: sysfs write failed" << std::endl;
        return Fail("map", kErofs);
      }
      break;
    }
  }
  absl::StatusOr<std::string> dev = loops_->Attach(backing, read_only);
  if (!dev.ok()) {
    std::cerr << "rbd: sysfs write failed" << std::endl;
    std::cerr << "rbd (fake): " << dev.status().message() << std::endl;
    return Fail("map", kEio);
  }
  const int id = table["next_id"].get<int>();
  table["next_id"] = id + 1;
  table["devices"].push_back({{"id", std::to_string(id)},
                              {"pool", spec->first},
                              {"namespace", ""},
                              {"name", spec->second},
                              {"snap", "-"},
                              {"device", *dev},
                              {"backing", backing}});
  SaveTable(table);
  std::cout << *dev << std::endl;
  return 0;
}

int FakeRbd::Unmap(const std::vector<std::string>& all_args) {
  std::vector<std::string> args = all_args;
  if (args.size() >= 2 && args[0] == "-o") {
    call_["options"] = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty()) {
    std::cerr << "rbd: unmap requires either image name or device path" << std::endl;
    return kEinval;
  }
  const std::string& target = args[0];
  json table = LoadTable();
  Reconcile(table);
  json& devices = table["devices"];
  std::optional<size_t> index;
  if (absl::StartsWith(target, "/dev/")) {
    struct stat st;
    if (stat(target.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) {
      std::cerr << "rbd: '" << target << "' is not a block device" << std::endl;
      return Fail("unmap", kEinval);
    }
    for (size_t i = 0; i < devices.size() && !index; ++i) {
      if (devices[i]["device"] == target) index = i;
    }
    if (!index) {
      std::cerr << "rbd: '" << target << "' is not an rbd device" << std::endl;
      return Fail("unmap", kEinval);
    }
  } else {
    std::optional<std::pair<std::string, std::string>> spec = ParseSpec(target);
    int matches = 0;
    for (size_t i = 0; spec && i < devices.size(); ++i) {
      if (devices[i]["pool"] == spec->first && devices[i]["name"] == spec->second) {
        if (!index) index = i;
        ++matches;
      }
    }
    const std::string shown = spec ? spec->first + "/" + spec->second : target;
    if (!index) {
      std::cerr << "rbd: " << shown << ": not a mapped image or snapshot" << std::endl;
      return Fail("unmap", kEinval);
    }
    if (matches > 1) {
      std::cerr << "rbd: " << shown << ": mapped more than once, unmapping "
                << devices[*index]["device"].get<std::string>() << " only" << std::endl;
    }
  }
  const json entry = devices[*index];
  absl::Status status = loops_->Detach(entry["device"], entry["backing"]);
  if (!status.ok()) {
    std::cerr << "rbd: sysfs write failed" << std::endl;
    if (IsBusy(status)) return Fail("unmap", kEbusy);
    std::cerr << "rbd (fake): " << status.message() << std::endl;
    return Fail("unmap", kEio);
  }
  devices.erase(*index);
  SaveTable(table);
  return 0;
}

int FakeRbd::List(const std::vector<std::string>& args) {
  const bool as_json = (args.size() == 2 && args[0] == "--format" && args[1] == "json") ||
                       (args.size() == 1 && args[0] == "--format=json");
  if (!as_json && !args.empty()) {
    std::cerr << "rbd (fake): device list supports only --format json" << std::endl;
    return kEinval;
  }
  json table = LoadTable();
  Reconcile(table);
  SaveTable(table);
  json out = json::array();
  for (const json& entry : table["devices"]) {
    json shown = entry;
    shown.erase("backing");
    out.push_back(shown);
  }
  if (as_json) {
    std::cout << out.dump() << std::endl;
    return 0;
  }
  if (out.empty()) return 0;
  std::cout << "id  pool  namespace  image  snap  device" << std::endl;
  for (const json& e : out) {
    std::cout << e["id"].get<std::string>() << "  " << e["pool"].get<std::string>() << "    "
              << "  " << e["name"].get<std::string>() << "  -  " << e["device"].get<std::string>()
              << std::endl;
  }
  return 0;
}

int FakeRbd::Create(const std::vector<std::string>& args) {
  uint64_t mib = 0;
  std::optional<std::pair<std::string, std::string>> spec;
  if (args.size() == 3 && args[1] == "--size" && absl::SimpleAtoi(args[2], &mib)) {
    spec = ParseSpec(args[0]);
  }
  if (!spec.has_value() || mib == 0) {
    std::cerr << "rbd (fake): usage: create POOL/IMAGE --size MIB" << std::endl;
    return kEinval;
  }
  const std::string path = ImagePath(spec->first, spec->second);
  absl::Status made = MakeDirs(Dirname(path), 0755);
  UniqueFd fd(made.ok() ? open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644) : -1);
  if (!fd.valid()) {
    const int err = made.ok() ? errno : kEio;
    std::cerr << "rbd: create error: (" << err << ") " << Strerror(err) << std::endl;
    return err;
  }
  if (ftruncate(fd.get(), static_cast<off_t>(mib << 20)) != 0) return kEio;
  return 0;
}

// `status POOL/IMAGE --format json [--id U -m M --keyfile F]`: every mapping is a watcher.
int FakeRbd::Status(const std::vector<std::string>& args) {
  std::optional<std::pair<std::string, std::string>> spec;
  if (!args.empty()) spec = ParseSpec(args[0]);
  if (!spec.has_value()) {
    std::cerr << "rbd (fake): usage: status POOL/IMAGE --format json" << std::endl;
    return kEinval;
  }
  struct stat st;
  if (stat(ImagePath(spec->first, spec->second).c_str(), &st) != 0) {
    std::cerr << "rbd: error opening image " << spec->second << ": (2) No such file or directory"
              << std::endl;
    return kEnoent;
  }
  json table = LoadTable();
  Reconcile(table);
  json watchers = json::array();
  for (const json& entry : table["devices"]) {
    if (entry["pool"] == spec->first && entry["name"] == spec->second) {
      watchers.push_back({{"address", "127.0.0.1:0/" + entry["id"].get<std::string>()},
                          {"client", 4100 + std::stoi(entry["id"].get<std::string>())},
                          {"cookie", 1}});
    }
  }
  std::cout << json{{"watchers", watchers}}.dump() << std::endl;
  return 0;
}

int FakeRbd::Remove(const std::vector<std::string>& args) {
  std::optional<std::pair<std::string, std::string>> spec;
  if (args.size() == 1) spec = ParseSpec(args[0]);
  if (!spec.has_value()) {
    std::cerr << "rbd (fake): usage: rm POOL/IMAGE" << std::endl;
    return kEinval;
  }
  if (unlink(ImagePath(spec->first, spec->second).c_str()) != 0) {
    std::cerr << "rbd: delete error: (" << errno << ") " << Strerror(errno) << std::endl;
    return errno;
  }
  return 0;
}

std::string OwnCmdline() {
  absl::StatusOr<std::string> raw = ReadSmallFile("/proc/self/cmdline");
  if (!raw.ok()) return "";
  std::string text = *raw;
  while (!text.empty() && text.back() == '\0') text.pop_back();
  for (char& c : text) {
    if (c == '\0') c = ' ';
  }
  return text;
}

void AppendCallLog(const std::string& dir, const json& call) {
  const std::string line = call.dump() + "\n";
  const std::string path = dir + "/calls.log";
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!fd.valid() || write(fd.get(), line.data(), line.size()) < 0) {
    std::cerr << "rbd (fake): cannot append to " << path << std::endl;
  }
}

}  // namespace
}  // namespace rbdcsi

int main(int argc, char** argv) {
  using rbdcsi::FakeRbd;
  const char* dir = getenv("RBDCSI_FAKE_RBD_DIR");
  if (dir == nullptr || *dir == '\0') {
    std::cerr << "rbd (fake): RBDCSI_FAKE_RBD_DIR is not set" << std::endl;
    return rbdcsi::kEinval;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  // One invocation at a time, like the kernel serializes sysfs writes.
  const std::string lock_path = std::string(dir) + "/lock";
  rbdcsi::UniqueFd lock(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock.valid() || flock(lock.get(), LOCK_EX) != 0) {
    std::cerr << "rbd (fake): cannot lock " << lock_path << std::endl;
    return rbdcsi::kEio;
  }
  FakeRbd rbd(dir, rbdcsi::NewRealLoopDevices());
  const int code = rbd.Run(args);
  rbdcsi::json call = rbd.call();
  call["cmdline"] = rbdcsi::OwnCmdline();
  call["argv"] = args;
  call["exit_code"] = code;
  if (!call.contains("keyfile_valid")) call["keyfile_valid"] = nullptr;
  rbdcsi::AppendCallLog(dir, call);
  return code;
}
