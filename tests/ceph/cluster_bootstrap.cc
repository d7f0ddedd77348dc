#include "tests/ceph/cluster_bootstrap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <rados/librados.hpp>
#include <random>
#include <rbd/librbd.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file_util.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;
constexpr char kMarker[] = ".rbdcsi-test-cluster";

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  std::ifstream("/dev/urandom", std::ios::binary).read(out.data(), static_cast<long>(n));
  return out;
}

std::string NewUuid() {
  std::string b = RandomBytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  std::string hex = absl::BytesToHexString(b);
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20));
}

bool PortFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A port P with P and P+1 free on 127.0.0.1, away from Ceph's defaults (3300, 6789, 6800+).
absl::StatusOr<int> FreePortPair() {
  std::mt19937 rng(std::random_device{}());
  for (int i = 0; i < 100; ++i) {
    const int port = 20000 + static_cast<int>(rng() % 20000) * 2;
    if (PortFree(port) && PortFree(port + 1)) return port;
  }
  return absl::UnavailableError("no free pair of ports on 127.0.0.1");
}

absl::Status WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoToStatus(errno, "create " + path);
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok ? absl::OkStatus() : ErrnoToStatus(errno, "write " + path);
}

// Runs a program with its output appended to `log` and waits for it (daemons fork and the
// started process returns once the daemon is up).
absl::Status Run(const std::vector<std::string>& argv, const std::string& log,
                 std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const pid_t pid = fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return absl::DeadlineExceededError(absl::StrCat(argv[0], " did not finish; see ", log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " failed (status ", status, "); see ", log));
  }
  return absl::OkStatus();
}

std::string CephConf(const ClusterOptions& o, const std::string& fsid, const std::string& mon) {
  const std::string& d = o.dir;
  return absl::StrCat("[global]\nfsid = ", fsid, "\nmon host = ", mon,
                      "\npublic addr = 127.0.0.1\n"
                      "auth cluster required = cephx\nauth service required = cephx\n"
                      "auth client required = cephx\nkeyring = ",
                      d, "/keyring\nrun dir = ", d, "/run\npid file = ", d, "/run/$name.pid\n",
                      "log file = ", d, "/log/$name.log\nadmin socket = ", d, "/run/$name.asok\n",
                      "osd pool default size = 1\nosd pool default min size = 1\n"
                      "osd pool default pg autoscale mode = off\nosd crush chooseleaf type = 0\n"
                      "mon allow pool size one = true\nmon allow pool delete = true\n"
                      "mon warn on pool no redundancy = false\nmon data avail warn = 1\n"
                      "mon warn on insecure global id reclaim allowed = false\n"
                      "auth allow insecure global id reclaim = false\n",
                      "mon data = ", d, "/$name\nosd data = ", d, "/$name\nmgr data = ", d,
                      "/$name\n",
                      "osd objectstore = memstore\nmemstore device bytes = 4294967296\n"
                      "paxos propose interval = 0.05\nmon osd cache size min = 64\n"
                      // A client killed without closing its images (a dead rbd-fuse) lets go of
                      // their watches after this, instead of the default 30 s.
                      "osd client watch timeout = 5\n"
                      "[client]\nadmin socket =\nlog file =\n");
}

std::string KeyringEntry(const std::string& name, const std::string& key,
                         const std::vector<std::pair<std::string, std::string>>& caps) {
  std::string out = absl::StrCat("[", name, "]\n\tkey = ", key, "\n");
  for (const auto& [service, cap] : caps) {
    absl::StrAppend(&out, "\tcaps ", service, " = \"", cap, "\"\n");
  }
  return out;
}

absl::Status MonCommand(librados::Rados& rados, const std::string& cmd,
                        const std::string& input = "", std::string* out = nullptr) {
  librados::bufferlist in, outbl;
  in.append(input);
  std::string outs;
  const int r = rados.mon_command(cmd, in, &outbl, &outs);
  if (r < 0) return ErrnoToStatus(-r, absl::StrCat("mon command ", cmd, ": ", outs));
  if (out != nullptr) *out = outbl.to_str();
  return absl::OkStatus();
}

// Formats osd.0's memstore without asking the mon, and starts it.
absl::Status StartOsd(const ClusterOptions& o, const std::string& uuid, const std::string& key) {
  const std::string data = o.dir + "/osd.0";
  RETURN_IF_ERROR(MakeDirs(data, 0700));
  RETURN_IF_ERROR(WriteFile(data + "/keyring", KeyringEntry("osd.0", key, {}), 0600));
  const std::string conf = o.dir + "/ceph.conf";
  const std::string log = o.dir + "/log/osd.0.out";
  RETURN_IF_ERROR(Run({"ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--osd-uuid", uuid,
                       "--no-mon-config", "--keyring", data + "/keyring"},
                      log));
  return Run({"ceph-osd", "-c", conf, "-i", "0", "--keyring", data + "/keyring"}, log);
}

absl::Status CreatePool(const ClusterOptions& o, librados::Rados& rados) {
  librados::IoCtx io;
  if (int r = rados.ioctx_create(o.pool.c_str(), io); r < 0) {
    return ErrnoToStatus(-r, "open pool " + o.pool);
  }
  // Sets the application and returns once the PGs are active.
  if (int r = librbd::RBD().pool_init(io, false); r < 0) {
    return ErrnoToStatus(-r, "rbd pool init " + o.pool);
  }
  return absl::OkStatus();
}

absl::Status WriteClientFiles(const ClusterOptions& o, const std::string& fsid, int port,
                              const std::string& user_key) {
  const std::string& d = o.dir;
  const std::string mon = absl::StrCat("127.0.0.1:", port);
  RETURN_IF_ERROR(WriteFile(d + "/rbdcsi.key", user_key + "\n", 0600));
  RETURN_IF_ERROR(
      WriteFile(d + "/cluster-config.json",
                absl::StrCat(R"([{"clusterID": ")", o.cluster_id, R"(", "monitors": [")", mon,
                             R"("], "rbd": {"radosNamespace": ""}, "controllerCredentials": )",
                             R"({"userID": "rbdcsi", "keyFile": ")", d, "/rbdcsi.key\"}}]\n"),
                0644));
  std::string secrets;
  for (const char* kind :
       {"CreateVolumeSecret", "DeleteVolumeSecret", "ControllerPublishSecret",
        "ControllerUnpublishSecret", "ControllerValidateVolumeCapabilitiesSecret",
        "NodeStageVolumeSecret", "NodePublishVolumeSecret", "CreateSnapshotSecret",
        "DeleteSnapshotSecret", "ControllerExpandVolumeSecret", "NodeExpandVolumeSecret",
        "ListSnapshotsSecret"}) {
    absl::StrAppend(&secrets, kind, ":\n  userID: rbdcsi\n  userKey: ", user_key, "\n");
  }
  RETURN_IF_ERROR(WriteFile(d + "/secrets.yaml", secrets, 0600));
  return WriteFile(
      d + "/env",
      absl::StrCat("RBDCSI_CEPH_DIR=", d, "\nRBDCSI_CEPH_CONF=", d, "/ceph.conf\n",
                   "RBDCSI_CEPH_MON=", mon, "\nRBDCSI_CEPH_MON_V2=127.0.0.1:", port + 1,
                   "\nRBDCSI_CEPH_FSID=", fsid, "\nRBDCSI_CEPH_CLUSTER_ID=", o.cluster_id,
                   "\nRBDCSI_CEPH_POOL=", o.pool, "\nRBDCSI_CEPH_USER=rbdcsi\n",
                   "RBDCSI_CEPH_KEYFILE=", d, "/rbdcsi.key\nRBDCSI_CEPH_CLUSTER_CONFIG=", d,
                   "/cluster-config.json\nRBDCSI_CEPH_SANITY_SECRETS=", d, "/secrets.yaml\n"),
      0644);
}

}  // namespace

std::string NewCephxKey() {
  // CryptoKey encoding: u16 type (1 = AES), utime_t created (u32 sec, u32 nsec), u16 length,
  // then the secret; all little-endian.
  const uint32_t now = static_cast<uint32_t>(time(nullptr));
  std::string raw = {1, 0};
  for (int i = 0; i < 4; ++i) raw.push_back(static_cast<char>((now >> (8 * i)) & 0xff));
  raw.append({0, 0, 0, 0, 16, 0});
  raw += RandomBytes(16);
  std::string out;
  absl::Base64Escape(raw, &out);
  return out;
}

absl::Status StartCluster(const ClusterOptions& o) {
  StopCluster(o.dir, true);
  if (fs::exists(o.dir)) return absl::AlreadyExistsError(o.dir + " exists and is not a cluster");
  for (const char* sub : {"", "/log", "/run", "/mon.a", "/mgr.x"}) {
    RETURN_IF_ERROR(MakeDirs(o.dir + sub, 0700));
  }
  RETURN_IF_ERROR(WriteFile(o.dir + "/" + kMarker, "", 0600));
  ASSIGN_OR_RETURN(const int port, FreePortPair());
  const std::string fsid = NewUuid();
  const std::string mon = absl::StrCat("[v2:127.0.0.1:", port + 1, ",v1:127.0.0.1:", port, "]");
  const std::string conf = o.dir + "/ceph.conf";
  RETURN_IF_ERROR(WriteFile(conf, CephConf(o, fsid, mon), 0644));
  const std::string user_key = NewCephxKey();
  const std::string rbd_caps = "profile rbd";
  RETURN_IF_ERROR(WriteFile(
      o.dir + "/keyring",
      KeyringEntry("mon.", NewCephxKey(), {{"mon", "allow *"}}) +
          KeyringEntry("client.admin", NewCephxKey(),
                       {{"mon", "allow *"}, {"osd", "allow *"}, {"mgr", "allow *"}}) +
          KeyringEntry("mgr.x", NewCephxKey(),
                       {{"mon", "allow profile mgr"}, {"osd", "allow *"}, {"mds", "allow *"}}) +
          KeyringEntry("client.rbdcsi", user_key,
                       {{"mon", rbd_caps}, {"osd", rbd_caps}, {"mgr", "profile rbd, allow r"}}),
      0600));
  const std::string log = o.dir + "/log/bootstrap.out";
  RETURN_IF_ERROR(
      Run({"monmaptool", "--create", "--addv", "a", mon, "--fsid", fsid, o.dir + "/monmap"}, log));
  RETURN_IF_ERROR(Run({"ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", o.dir + "/monmap",
                       "--keyring", o.dir + "/keyring"},
                      log));
  RETURN_IF_ERROR(Run({"ceph-mon", "-c", conf, "-i", "a"}, o.dir + "/log/mon.a.out"));
  if (o.with_mgr) RETURN_IF_ERROR(Run({"ceph-mgr", "-c", conf, "-i", "x"}, log));

  librados::Rados rados;
  if (int r = rados.init2("client.admin", "ceph", 0); r < 0) return ErrnoToStatus(-r, "rados");
  if (int r = rados.conf_read_file(conf.c_str()); r < 0) return ErrnoToStatus(-r, "read " + conf);
  for (const char* opt : {"client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout"}) {
    rados.conf_set(opt, "30");
  }
  if (int r = rados.connect(); r < 0) return ErrnoToStatus(-r, "connect to the mon");
  // Register the OSD, then format and start it while the pool is being created.
  const std::string uuid = NewUuid();
  const std::string osd_key = NewCephxKey();
  RETURN_IF_ERROR(MonCommand(rados, R"({"prefix": "osd new", "uuid": ")" + uuid + "\"}",
                             R"({"cephx_secret": ")" + osd_key + "\"}"));
  absl::Status osd;
  std::thread osd_thread([&] { osd = StartOsd(o, uuid, osd_key); });
  absl::Status pool = MonCommand(
      rados, R"({"prefix": "osd pool create", "pool": ")" + o.pool + R"(", "pg_num": 8})");
  osd_thread.join();
  RETURN_IF_ERROR(osd);
  RETURN_IF_ERROR(pool);
  RETURN_IF_ERROR(CreatePool(o, rados));
  rados.shutdown();
  return WriteClientFiles(o, fsid, port, user_key);
}

void StopCluster(const std::string& dir, bool remove_dir) {
  std::error_code ec;
  if (!fs::exists(dir + "/" + kMarker, ec)) return;
  const std::string conf = dir + "/ceph.conf";
  std::vector<pid_t> killed;
  for (const auto& entry : fs::directory_iterator(dir + "/run", ec)) {
    if (entry.path().extension() != ".pid") continue;
    absl::StatusOr<std::string> text = ReadSmallFile(entry.path());
    int pid = 0;
    if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid) || pid <= 1) {
      continue;
    }
    absl::StatusOr<std::string> cmdline = ReadSmallFile(absl::StrCat("/proc/", pid, "/cmdline"));
    if (!cmdline.ok() || !absl::StrContains(*cmdline, conf)) continue;  // not ours (any more)
    if (kill(pid, SIGKILL) == 0) killed.push_back(pid);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (pid_t pid : killed) {
    while (kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
      // A SIGKILLed daemon that is not our child turns into a zombie of init; /proc/PID/stat
      // says Z then, which counts as gone.
      absl::StatusOr<std::string> stat = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat"));
      if (!stat.ok() || absl::StrContains(*stat, ") Z ")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (remove_dir) fs::remove_all(dir, ec);
}

absl::StatusOr<std::vector<std::string>> ReadEnvFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#' || !absl::StrContains(line, '=')) continue;
    out.emplace_back(line);
  }
  return out;
}

}  // namespace rbdcsi
