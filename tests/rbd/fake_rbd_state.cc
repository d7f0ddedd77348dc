// tests/rbd/fake_rbd's state: its device table, key-file checks, the image commands and its
// call log.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/fd.h"
#include "base/file_util.h"
#include "base/hash.h"
#include "base/status.h"
#include "tests/rbd/fake_rbd.h"

namespace rbdcsi {

std::string Strerror(int err) { return std::strerror(err); }

int Fail(const std::string& action, int err) {
  std::cerr << "rbd: " << action << " failed: (" << err << ") " << Strerror(err) << std::endl;
  return err;
}

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

void FakeRbd::Delay(const std::string& file) const {
  int delay_ms = 0;
  absl::StatusOr<std::string> delay = ReadSmallFile(absl::StrCat(dir_, "/", file));
  if (delay.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*delay), &delay_ms) &&
      delay_ms > 0) {
    usleep(static_cast<useconds_t>(delay_ms) * 1000);
  }
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

}  // namespace rbdcsi
