// Images in a Ceph cluster through librados/librbd: the controller's Ceph backend. Only the
// controller links this library; the node reaches clusters through its mappers' programs.
#ifndef RBDCSI_CEPH_CEPH_IMAGE_STORE_H_
#define RBDCSI_CEPH_CEPH_IMAGE_STORE_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <rados/librados.hpp>
#include <rbd/librbd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rbd/cluster_config.h"
#include "rbd/image_store.h"

namespace rbdcsi {

struct CephClientOptions {
  // Bound of every librados call (client_mount_timeout, rados_mon_op_timeout,
  // rados_osd_op_timeout): a cluster that does not answer yields UNAVAILABLE after it.
  std::chrono::seconds timeout{10};
};

// A librados return code (negative errno) as a Status: a cluster that does not answer
// (ETIMEDOUT, ESHUTDOWN, ENOTCONN, ECONNREFUSED, ...) is UNAVAILABLE, EEXIST ALREADY_EXISTS,
// ENOENT NOT_FOUND, EBUSY/ENOTEMPTY FAILED_PRECONDITION, ENOSPC/EDQUOT RESOURCE_EXHAUSTED,
// EPERM/EACCES PERMISSION_DENIED. `what` says what was attempted on which image.
absl::Status CephStatus(int r, std::string_view what);

// True for the codes after which the session must be established again (UNAVAILABLE).
bool SessionLost(int r);

// One cluster, one cephx user: a cached librados session, established on first use and again
// after an error that means it is gone. Thread-safe; operations on one image are serialized
// by the caller. Images deleted while they have snapshots or clones go to the RBD trash
// (marked as rbdcsi's), and leave it once nothing depends on them.
class CephImageStore : public ImageStore {
 public:
  CephImageStore(ClusterConfig cluster, Credentials credentials, CephClientOptions options);
  ~CephImageStore() override;

  // Establishes the session if there is none. UNAVAILABLE when the cluster does not answer
  // within the timeout, PERMISSION_DENIED when it rejects the credentials.
  absl::Status Connect();
  // Replaces the credentials; an established session with other ones is dropped.
  void SetCredentials(const Credentials& credentials);
  // Replaces the cluster's monitors/namespace after a config reload; drops the session when
  // the monitors changed.
  void SetCluster(const ClusterConfig& cluster);

  absl::StatusOr<ImageInfo> Create(const ImageId& id, uint64_t size_bytes,
                                   const CreateOptions& options) override;
  absl::Status Delete(const ImageId& id) override;
  absl::Status Resize(const ImageId& id, uint64_t new_size) override;
  absl::StatusOr<ImageInfo> Info(const ImageId& id) override;
  absl::StatusOr<std::vector<ImageInfo>> List(std::string_view pool) override;
  absl::StatusOr<SnapshotInfo> CreateSnapshot(const ImageId& source,
                                              std::string_view name) override;
  absl::Status DeleteSnapshot(const SnapshotId& id) override;
  absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(
      const std::optional<ImageId>& source) override;
  absl::StatusOr<ImageInfo> CloneFromSnapshot(const SnapshotId& snapshot, const ImageId& dst,
                                              uint64_t size_bytes) override;
  absl::StatusOr<ImageInfo> CloneFromImage(const ImageId& src, const ImageId& dst,
                                           uint64_t size_bytes) override;
  absl::StatusOr<uint64_t> Capacity(std::string_view pool) override;
  absl::StatusOr<std::vector<std::string>> Watchers(const ImageId& id) override;
  absl::Status SetQos(const ImageId& id, const std::map<std::string, uint64_t>& limits) override;

 private:
  // An open pool; the session outlives the IoCtx.
  struct PoolHandle {
    std::shared_ptr<librados::Rados> rados;
    librados::IoCtx io;
  };

  absl::StatusOr<std::shared_ptr<librados::Rados>> Session();
  // Maps `r` and drops the session when it is lost.
  absl::Status Check(int r, std::string_view what);
  absl::StatusOr<PoolHandle> Pool(const std::string& pool, const std::string& ns);
  absl::StatusOr<PoolHandle> Pool(const ImageId& id) { return Pool(id.pool, id.rados_namespace); }
  // Opens the image by name, or its rbdcsi-trashed copy when `include_trash`.
  absl::Status Open(librados::IoCtx& io, const ImageId& id, bool read_only, bool include_trash,
                    librbd::Image* image, std::string* trash_id = nullptr);
  absl::StatusOr<ImageInfo> InfoOf(const ImageId& id, librbd::Image& image);
  absl::StatusOr<std::vector<SnapshotInfo>> SnapshotsOf(const ImageId& id, librbd::Image& image);
  // Image names of the pool/namespace, including rbdcsi's trashed ones (trash id in second).
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> AllImages(librados::IoCtx& io,
                                                                             const ImageId& where);
  // The namespaces listings cover: the pool's default one, and the cluster config's.
  std::vector<std::string> Namespaces();
  // Removes rbdcsi's trashed images that nothing depends on any more.
  void PurgeTrash(librados::IoCtx& io);
  absl::StatusOr<ImageInfo> Clone(librados::IoCtx& parent_io, const std::string& parent,
                                  const std::string& snap, uint64_t snap_size, const ImageId& dst,
                                  uint64_t size_bytes, const std::string& source);

  // Image metadata: what a clone was made from (a snapshot or volume id).
  static constexpr char kSourceKey[] = "rbdcsi.source";

  const CephClientOptions options_;
  std::mutex mu_;  // guards the fields below
  ClusterConfig cluster_;
  Credentials credentials_;
  std::shared_ptr<librados::Rados> session_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_CEPH_CEPH_IMAGE_STORE_H_
