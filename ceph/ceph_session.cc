// The librados session of a CephImageStore: establishing it within the timeout, mapping
// return codes, and dropping it when the cluster went away.
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/status.h"
#include "ceph/ceph_image_store.h"

namespace rbdcsi {

bool SessionLost(int r) {
  switch (-r) {
    case ETIMEDOUT:
    case ESHUTDOWN:  // also EBLOCKLISTED: this client was fenced
    case ENOTCONN:
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

absl::Status CephStatus(int r, std::string_view what) {
  if (r >= 0) return absl::OkStatus();
  const int e = -r;
  if (SessionLost(r)) {
    return absl::UnavailableError(
        absl::StrCat(AsAbsl(what), ": the cluster did not answer (", std::strerror(e), ")"));
  }
  switch (e) {
    case ENOTEMPTY:
    case EBUSY:
    case EMLINK:
      return absl::FailedPreconditionError(absl::StrCat(AsAbsl(what), ": ", std::strerror(e)));
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(absl::StrCat(AsAbsl(what), ": ", std::strerror(e)));
    default:
      return ErrnoToStatus(e, what);
  }
}

CephImageStore::CephImageStore(ClusterConfig cluster, Credentials credentials,
                               CephClientOptions options)
    : options_(options), cluster_(std::move(cluster)), credentials_(std::move(credentials)) {}

CephImageStore::~CephImageStore() = default;

void CephImageStore::SetCredentials(const Credentials& credentials) {
  std::lock_guard<std::mutex> lock(mu_);
  if (credentials.user == credentials_.user && credentials.key == credentials_.key) return;
  credentials_ = credentials;
  session_.reset();
}

void CephImageStore::SetCluster(const ClusterConfig& cluster) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cluster.monitors != cluster_.monitors) session_.reset();
  cluster_ = cluster;
}

absl::Status CephImageStore::Connect() { return Session().status(); }

absl::StatusOr<std::shared_ptr<librados::Rados>> CephImageStore::Session() {
  std::lock_guard<std::mutex> lock(mu_);
  if (session_) return session_;
  const std::string what =
      absl::StrCat("connect to cluster ", cluster_.cluster_id, " as ", credentials_.user);
  auto rados = std::make_shared<librados::Rados>();
  int r = rados->init2(("client." + credentials_.user).c_str(), "ceph", 0);
  if (r < 0) return CephStatus(r, what);
  const std::string timeout = std::to_string(options_.timeout.count());
  // Only what is set here counts: no ceph.conf, no keyring search, no admin socket, no log
  // files; the key goes through the API and never reaches a file, an argv or a log.
  const std::pair<const char*, std::string> conf[] = {
      {"mon_host", cluster_.MonitorList()},
      {"key", credentials_.key},
      {"client_mount_timeout", timeout},
      {"rados_mon_op_timeout", timeout},
      {"rados_osd_op_timeout", timeout},
      {"rbd_default_clone_format", "2"},  // clones that survive their parent snapshot's deletion
      {"admin_socket", ""},
      {"log_file", ""},
      {"log_to_stderr", "false"},
      {"err_to_stderr", "false"},
      {"keyring", ""},
  };
  for (const auto& [key, value] : conf) {
    r = rados->conf_set(key, value.c_str());
    if (r < 0) return CephStatus(r, absl::StrCat(what, ": set ", key));
  }
  r = rados->connect();
  if (r < 0) {
    rados->shutdown();
    if (r == -EPERM || r == -EACCES || r == -EINVAL) {
      return absl::PermissionDeniedError(
          absl::StrCat(what, ": the cluster rejected the credentials (", std::strerror(-r), ")"));
    }
    if (r == -ETIMEDOUT) {
      // cephx answers a wrong key by silence too, so both causes are named.
      return absl::UnavailableError(absl::StrCat(what, ": the cluster did not answer within ",
                                                 timeout, " s (monitors ", cluster_.MonitorList(),
                                                 " unreachable, or the key was rejected)"));
    }
    return CephStatus(r, what);
  }
  session_ = std::move(rados);
  Logger("ceph")->info("connected to cluster {} as {}", cluster_.cluster_id, credentials_.user);
  return session_;
}

absl::Status CephImageStore::Check(int r, std::string_view what) {
  if (r >= 0) return absl::OkStatus();
  if (SessionLost(r)) {
    std::lock_guard<std::mutex> lock(mu_);
    if (session_) {
      Logger("ceph")->warn("cluster {}: {} failed ({}); the session will be re-established",
                           cluster_.cluster_id, what, std::strerror(-r));
    }
    session_.reset();
  }
  std::string cluster;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cluster = cluster_.cluster_id;
  }
  return CephStatus(r, absl::StrCat("cluster ", cluster, ": ", AsAbsl(what)));
}

absl::StatusOr<CephImageStore::PoolHandle> CephImageStore::Pool(const std::string& pool,
                                                                const std::string& ns) {
  PoolHandle handle;
  ASSIGN_OR_RETURN(handle.rados, Session());
  const int r = handle.rados->ioctx_create(pool.c_str(), handle.io);
  if (r == -ENOENT) return absl::NotFoundError(absl::StrCat("pool ", pool, " does not exist"));
  RETURN_IF_ERROR(Check(r, "open pool " + pool));
  handle.io.set_namespace(ns);
  return handle;
}

}  // namespace rbdcsi
