// The canonical identity of an image and the one codec between it and CSI volume and snapshot
// ids. Controller and node both go through here, so two names of one image can be recognised.
#ifndef RBDCSI_RBD_IMAGE_ID_H_
#define RBDCSI_RBD_IMAGE_ID_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// CSI asks plugins to keep ids within 128 bytes; every id this codec makes fits.
inline constexpr size_t kMaxIdLength = 128;
// The longest cluster, pool, namespace or image name (further bounded by kMaxIdLength).
inline constexpr size_t kMaxImageNameLength = 128;

// OK for 1-128 characters of [A-Za-z0-9._-] not starting with '.'; INVALID_ARGUMENT naming
// `field` otherwise (the offending name is shown only when it is printable). The one naming
// rule for clusters, pools, namespaces, images and snapshots.
absl::Status ValidateImageName(std::string_view name, std::string_view field);

struct ImageId {
  ImageId() = default;
  // All four parts, always: a brace list of two names means an ImageSpec, never an ImageId.
  ImageId(std::string cluster_id, std::string pool, std::string rados_namespace, std::string image)
      : cluster_id(std::move(cluster_id)),
        pool(std::move(pool)),
        rados_namespace(std::move(rados_namespace)),
        image(std::move(image)) {}

  std::string cluster_id;  // empty for the loop backend (images on this node)
  std::string pool;
  std::string rados_namespace;  // empty: the pool's default namespace
  std::string image;

  // The per-image lock key: distinct for distinct images, equal for equal ones, whatever
  // volume id or volume context named them.
  std::string Key() const;
  // For messages: the same text as EncodeVolumeId.
  std::string ToString() const;
  // What a mapper needs (the cluster is reached through the mapper's own options).
  ImageSpec Spec() const { return ImageSpec{pool, image, rados_namespace}; }
  static ImageId FromSpec(std::string cluster_id, const ImageSpec& spec) {
    return ImageId{std::move(cluster_id), spec.pool, spec.rados_namespace, spec.image};
  }

  bool operator==(const ImageId& o) const {
    return std::tie(cluster_id, pool, rados_namespace, image) ==
           std::tie(o.cluster_id, o.pool, o.rados_namespace, o.image);
  }
  bool operator!=(const ImageId& o) const { return !(*this == o); }
  bool operator<(const ImageId& o) const {
    return std::tie(cluster_id, pool, rados_namespace, image) <
           std::tie(o.cluster_id, o.pool, o.rados_namespace, o.image);
  }
};

// OK when every name follows ValidateImageName (cluster and namespace may be empty) and the
// encoded volume id fits kMaxIdLength; INVALID_ARGUMENT naming the field otherwise.
absl::Status ValidateImageId(const ImageId& id);

// The volume id of an image that passes ValidateImageId:
//   "pool/image"                  loop backend (no cluster), default namespace
//   "pool/ns/image"               no cluster, a namespace
//   "cluster:pool/image"          Ceph, default namespace
//   "cluster:pool/ns/image"       Ceph, a namespace
// Names cannot contain ':', '/' or '@', so the forms cannot be confused. One id per image.
std::string EncodeVolumeId(const ImageId& id);

// The inverse of EncodeVolumeId, exact: Decode(Encode(x)) == x and Encode(Decode(s)) == s.
// INVALID_ARGUMENT for junk (empty, longer than kMaxIdLength, control or non-ASCII bytes);
// NOT_FOUND for a printable id that names no image this codec can decode (e.g. "pvc-1",
// "a/b/c/d", a non-canonical spelling): such a volume cannot exist.
absl::StatusOr<ImageId> DecodeVolumeId(std::string_view volume_id);

// A snapshot of an image, by name.
struct SnapshotId {
  ImageId image;
  std::string snapshot;

  bool operator==(const SnapshotId& o) const { return image == o.image && snapshot == o.snapshot; }
};

// OK when the image and the snapshot name are valid and the encoded id fits kMaxIdLength.
absl::Status ValidateSnapshotId(const SnapshotId& id);
// "<volume id>@<snapshot>", for a SnapshotId that passes ValidateSnapshotId.
std::string EncodeSnapshotId(const SnapshotId& id);
// The inverse of EncodeSnapshotId, exact; codes as DecodeVolumeId.
absl::StatusOr<SnapshotId> DecodeSnapshotId(std::string_view snapshot_id);

// A cluster id for a static volume whose context names `monitors` instead of a clusterID:
// "mon-" and a stable hash of the canonical monitor list (entries trimmed, sorted, without
// duplicates), so that every spelling of one list gives one id. Two lists naming different
// monitors of one cluster give different ids: a node that must equate them needs a cluster
// configuration mapping both to one clusterID.
std::string ClusterIdFromMonitors(std::string_view monitors);

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_IMAGE_ID_H_
