// tests/rbd/fake_rbd's kernel-device commands (map, unmap, list) and its main (usage in
// fake_rbd.h).
#include "tests/rbd/fake_rbd.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/status.h"

namespace rbdcsi {

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

int FakeRbd::ParseMap(const std::vector<std::string>& args, MapRequest* req) {
  std::string spec_text;
  bool have_id = false, have_mon = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--read-only") {
      req->read_only = true;
    } else if ((a == "--id" || a == "-m" || a == "--keyfile" || a == "-o") && has_value) {
      const std::string& value = args[++i];
      if (a == "--keyfile") req->keyfile = value;
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
  if (!spec.has_value() || !have_id || !have_mon || req->keyfile.empty()) {
    std::cerr << "rbd (fake): map needs POOL/IMAGE, --id, -m and --keyfile" << std::endl;
    return kEinval;
  }
  req->spec = *spec;
  call_["keyfile"] = req->keyfile;
  struct stat st;
  if (stat(req->keyfile.c_str(), &st) != 0) {
    call_["keyfile_valid"] = false;
    call_["keyfile_hash"] = nullptr;
    std::cerr << "rbd: failed to get secret" << std::endl;
    return Fail("map", kEnoent);
  }
  if (!CheckKeyFile(req->keyfile)) {
    std::cerr << "rbd (fake): key file " << req->keyfile << " is not a non-empty 0600 file"
              << std::endl;
    return Fail("map", kEacces);
  }
  return 0;
}

int FakeRbd::CheckNotMapped(json& table, const MapRequest& req) {
  Reconcile(table);
  for (const json& entry : table["devices"]) {
    if (entry["pool"] == req.spec.first && entry["name"] == req.spec.second) {
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
  return 0;
}

int FakeRbd::Map(const std::vector<std::string>& args) {
  MapRequest req;
  if (const int rc = ParseMap(args, &req); rc != 0) return rc;
  const std::string backing = ImagePath(req.spec.first, req.spec.second);
  Delay("map_delay_ms");
  int forced = 0;
  if (const char* e = getenv("RBDCSI_FAKE_RBD_MAP_ERRNO"); e != nullptr) {
    if (!absl::SimpleAtoi(e, &forced)) forced = 0;
  }
  struct stat st;
  if (forced == 0 && stat(backing.c_str(), &st) != 0) forced = kEnoent;
  if (forced != 0) {
    std::cerr << "rbd: sysfs write failed" << std::endl;
    std::cout << "In some cases useful info is found in syslog - try \"dmesg | tail\"."
              << std::endl;
    return Fail("map", forced);
  }

  json table = LoadTable();
  if (const int rc = CheckNotMapped(table, req); rc != 0) return rc;
  absl::StatusOr<std::string> dev = loops_->Attach(backing, req.read_only);
  if (!dev.ok()) {
    std::cerr << "rbd: sysfs write failed" << std::endl;
    std::cerr << "rbd (fake): " << dev.status().message() << std::endl;
    return Fail("map", kEio);
  }
  const int id = table["next_id"].get<int>();
  table["next_id"] = id + 1;
  table["devices"].push_back({{"id", std::to_string(id)},
                              {"pool", req.spec.first},
                              {"namespace", ""},
                              {"name", req.spec.second},
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
  Delay("unmap_delay_ms");
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
