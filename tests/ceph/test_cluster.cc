// rbdcsi-test-cluster: a throwaway single-node Ceph cluster for tests, from Debian's packages
// (ceph-mon, ceph-osd, ceph-mgr, ceph-common): one mon, one memstore OSD and one mgr on
// 127.0.0.1 with free non-default ports, cephx on, one pool of size 1. No systemd, no root
// needed beyond writing DIR; nothing outside DIR is touched.
//
//   rbdcsi-test-cluster start DIR [--pool NAME] [--no-mgr]
//       Creates DIR (stopping a cluster this program left there first), starts the daemons and
//       returns once the pool accepts I/O. Prints "ready in N ms" on stdout. Exit 0 on success;
//       on failure exit 1, the daemons it started are stopped and the logs stay in DIR/log.
//   rbdcsi-test-cluster stop DIR
//       Kills the daemons whose pid files are in DIR/run (only processes started with this
//       DIR's ceph.conf) and removes DIR. A DIR that does not exist is OK. Exit 0.
//   rbdcsi-test-cluster run DIR [--pool NAME] [--no-mgr] -- COMMAND [ARG...]
//       start, then COMMAND with DIR/env's variables in its environment, then stop (also when
//       COMMAND fails or this program gets SIGINT/SIGTERM). Exits with COMMAND's exit code.
//
// After start, DIR holds (see tests/ceph/README.md):
//   env                  KEY=VALUE lines (no secrets) that tests and scripts read:
//                        RBDCSI_CEPH_DIR, RBDCSI_CEPH_CONF (admin; for `rbd -c`),
//                        RBDCSI_CEPH_MON (v1 host:port), RBDCSI_CEPH_MON_V2, RBDCSI_CEPH_FSID,
//                        RBDCSI_CEPH_CLUSTER_ID, RBDCSI_CEPH_POOL, RBDCSI_CEPH_USER,
//                        RBDCSI_CEPH_KEYFILE, RBDCSI_CEPH_CLUSTER_CONFIG,
//                        RBDCSI_CEPH_SANITY_SECRETS
//   ceph.conf, keyring   the cluster's configuration and the admin/mon/mgr keys (0600)
//   rbdcsi.key           key of the cephx user "rbdcsi" (profile rbd), 0600
//   cluster-config.json  an `rbdcsi serve --cluster-config` file naming this cluster
//   secrets.yaml         csi-sanity's --csi.secrets file for that user (0600)
//   log/, run/           daemon logs; pid files
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "tests/ceph/cluster_bootstrap.h"

namespace rbdcsi {
namespace {

int Usage() {
  std::cerr << "usage: rbdcsi-test-cluster start DIR [--pool NAME] [--no-mgr]\n"
               "       rbdcsi-test-cluster stop DIR\n"
               "       rbdcsi-test-cluster run DIR [--pool NAME] [--no-mgr] -- COMMAND [ARG...]\n";
  return 2;
}

// Parses the options after DIR up to "--" (or the end); returns the index after "--", or -1.
bool ParseOptions(int argc, char** argv, int* index, ClusterOptions* options) {
  for (; *index < argc; ++*index) {
    const std::string arg = argv[*index];
    if (arg == "--") {
      ++*index;
      return true;
    }
    if (arg == "--no-mgr") {
      options->with_mgr = false;
    } else if (arg == "--pool" && *index + 1 < argc) {
      options->pool = argv[++*index];
    } else {
      std::cerr << "rbdcsi-test-cluster: unknown option " << arg << "\n";
      return false;
    }
  }
  return true;
}

int Start(const ClusterOptions& options) {
  const auto begin = std::chrono::steady_clock::now();
  absl::Status st = StartCluster(options);
  if (!st.ok()) {
    std::cerr << "rbdcsi-test-cluster: " << st.message() << " (logs in " << options.dir
              << "/log)\n";
    StopCluster(options.dir, /*remove_dir=*/false);
    return 1;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - begin)
                      .count();
  std::cout << "rbdcsi-test-cluster: ready in " << ms << " ms (" << options.dir << "/env)"
            << std::endl;
  return 0;
}

volatile sig_atomic_t g_child = 0;

void ForwardSignal(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

int RunCommand(const ClusterOptions& options, char** command) {
  if (int rc = Start(options); rc != 0) return rc;
  absl::StatusOr<std::vector<std::string>> env = ReadEnvFile(options.dir + "/env");
  if (!env.ok()) {
    std::cerr << "rbdcsi-test-cluster: " << env.status().message() << "\n";
    StopCluster(options.dir, true);
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = ForwardSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    for (std::string& kv : *env) putenv(kv.data());
    execvp(command[0], command);
    std::fprintf(stderr, "rbdcsi-test-cluster: cannot run %s: %s\n", command[0],
                 std::strerror(errno));
    _exit(127);
  }
  g_child = pid;
  int status = 0;
  while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  StopCluster(options.dir, true);
  if (pid < 0) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace
}  // namespace rbdcsi

int main(int argc, char** argv) {
  using namespace rbdcsi;
  if (argc < 3) return Usage();
  const std::string verb = argv[1];
  ClusterOptions options;
  options.dir = argv[2];
  if (options.dir.empty() || options.dir[0] != '/') {
    std::cerr << "rbdcsi-test-cluster: DIR must be an absolute path\n";
    return 2;
  }
  int index = 3;
  if (verb == "stop") {
    StopCluster(options.dir, true);
    return 0;
  }
  if (!ParseOptions(argc, argv, &index, &options)) return Usage();
  if (verb == "start") return Start(options);
  if (verb == "run" && index < argc) return RunCommand(options, argv + index);
  return Usage();
}
