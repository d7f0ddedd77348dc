// The durable per-volume record: what NodeUnstageVolume needs to undo, kept outside the
// staging path so that a retry after a partial failure still finds the device to unmap.
#ifndef RBDCSI_DRIVER_VOLUME_RECORD_H_
#define RBDCSI_DRIVER_VOLUME_RECORD_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rbd/image_id.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// How far staging got. Written before each step that creates something, updated after it.
enum class StageStep {
  kMapping,    // about to map: the device may or may not exist
  kMapped,     // device known; maybe formatted, not (yet) mounted
  kStaged,     // mounted at the staging path (or, for block volumes, mapped and ready)
  kUnmounted,  // unstage unmounted the staging path; the unmap is still owed
};

std::string_view StageStepName(StageStep step);

struct VolumeRecord {
  std::string volume_id;
  std::string mapper;      // "loop", "krbd"
  std::string cluster_id;  // of the image; empty for the loop backend
  ImageSpec image;
  std::string monitors;  // krbd; the key is never recorded
  std::string user;
  MappedDevice device;  // path and major:minor once mapped
  std::string staging_path;
  bool block = false;  // access type block (no filesystem) or mount
  std::string fs_type;
  std::vector<std::string> mount_flags;  // ApplyMountFlagPolicy's result: the mount options
  bool read_only = false;
  // Peer group ("shared:N") of the staging mount, 0 when it is not shared. Copies of the mount
  // that are slaves of this group ("master:N") go away with the host unmount.
  int staging_peer_group = 0;
  // Mount id of the staging mount in the plugin's namespace, 0 when unknown.
  int staging_mount_id = 0;
  StageStep step = StageStep::kMapping;
  // Target paths (CanonicalPath form) this plugin bind-mounted the volume at, each written
  // before its bind so that a crash leaves no publish unrecorded. Unpublish undoes only these.
  std::vector<std::string> published;
  // False for records of older versions, which did not track publishes: unpublish then falls
  // back to recognising a bind of the volume's device at the target.
  bool publishes_known = true;

  bool has_device() const { return !device.path.empty(); }
  ImageId image_id() const { return ImageId::FromSpec(cluster_id, image); }
};

std::string EncodeRecord(const VolumeRecord& record);
// INVALID_ARGUMENT (naming the problem) for malformed or incomplete JSON.
absl::StatusOr<VolumeRecord> DecodeRecord(std::string_view json);

// The largest record file Load and List read; anything larger is not one of ours.
inline constexpr size_t kMaxRecordBytes = 64 * 1024;

// Records as files in one directory. Thread-safe for different volume ids; callers hold the
// per-volume lock.
class RecordStore {
 public:
  // How List() reads. kDisk: every record file, at every call. kOwned, for the one process
  // that owns the directory (serve holds the state directory's lock): the files at the first
  // call, then memory that this store's (and its copies') Save and Delete keep current, so that
  // the one-owner-per-image check of N concurrent stages costs no O(N^2) reads. Load always
  // reads the file.
  enum class Listing { kDisk, kOwned };

  explicit RecordStore(std::string dir, Listing listing = Listing::kDisk);

  // A file name for `volume_id` that stays inside the directory whatever the id contains
  // ("/", "..", NUL, very long ids): safe characters are kept, others %XX-escaped, and a long
  // result is cut and suffixed with a hash of the whole id.
  static std::string FileNameFor(std::string_view volume_id);

  // nullopt when there is no record. DATA_LOSS when the file exists but cannot be decoded,
  // belongs to another id, or is larger than kMaxRecordBytes (then it is not read at all); the
  // file is left for an operator to inspect.
  absl::StatusOr<std::optional<VolumeRecord>> Load(std::string_view volume_id) const;

  // Atomically replaces the record: write to a temporary file whose name is unique to this
  // process and call, fsync, rename, fsync the directory. After a crash either the old or the
  // new record is there, never a torn one.
  absl::Status Save(const VolumeRecord& record) const;

  // OK when there is no record.
  absl::Status Delete(std::string_view volume_id) const;

  // Removes temporary files a crashed writer left; returns how many. Only for the one process
  // that owns the directory (serve holds the state directory's lock), before it saves anything.
  int RemoveStaleTemporaries() const;

  // All decodable records (others, and files over kMaxRecordBytes, are logged and skipped).
  absl::StatusOr<std::vector<VolumeRecord>> List() const;

  const std::string& dir() const { return dir_; }

 private:
  struct Index;  // kOwned: the records by volume id, once List() read them

  std::string PathFor(std::string_view volume_id) const;
  absl::StatusOr<std::vector<VolumeRecord>> ReadAll() const;
  const std::string dir_;
  std::shared_ptr<Index> index_;  // null for kDisk
};

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_VOLUME_RECORD_H_
