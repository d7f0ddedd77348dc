// Parsing of /proc/PID/mountinfo (proc(5)) and the propagation class of a mount.
//
// The parsers take text and know nothing about files; ReadMountInfo() is the thin layer that reads
// a file and parses it. All functions are thread-safe (they share no state).
#ifndef RBDCSI_MOUNTER_MOUNTINFO_H_
#define RBDCSI_MOUNTER_MOUNTINFO_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/file_util.h"  // ReadWholeFile, for the readers here and their callers

namespace rbdcsi {

// One line of mountinfo:
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
struct MountInfo {
  int mount_id = 0;
  int parent_id = 0;
  unsigned major = 0;
  unsigned minor = 0;
  std::string root;           // Field 4, unescaped: the bind-mounted path inside the filesystem.
  std::string mount_point;    // Field 5, unescaped, relative to the reading process's root.
  std::string mount_options;  // Per-mount options, e.g. "rw,nosuid,relatime".
  std::vector<std::string> optional_fields;  // Raw tags: "shared:1", "master:3",
                                             // "propagate_from:2", "unbindable".
  std::string fs_type;                       // Unescaped, e.g. "ext4" or "fuse.sshfs".
  std::string source;                        // Unescaped; may be empty.
  std::string super_options;  // Raw: per-superblock options keep the kernel's escaping so that
                              // a ',' inside an option value cannot split it.

  // N of "shared:N": the peer group this mount belongs to, if it is shared.
  std::optional<int> shared_peer_group() const;
  // N of "master:N": the peer group this mount receives propagation from, if it is a slave.
  std::optional<int> master_peer_group() const;
  // N of "propagate_from:N": the nearest dominating peer group visible under the reader's root,
  // shown by the kernel only when it differs from the master.
  std::optional<int> propagate_from_peer_group() const;
  bool is_unbindable() const;
};

// Parses a whole mountinfo text. Empty lines are skipped. Returns INVALID_ARGUMENT naming the
// 1-based line number when a line is malformed.
absl::StatusOr<std::vector<MountInfo>> ParseMountInfo(std::string_view text);

// Parses one line (without its trailing newline). Returns INVALID_ARGUMENT when the line has too
// few fields, lacks the " - " separator, has a field that is not a valid number, or contains a
// newline.
absl::StatusOr<MountInfo> ParseMountInfoLine(std::string_view line);

// Undoes the kernel's octal escaping of mountinfo fields (\040 space, \011 tab, \012 newline,
// \134 backslash, or any other \ooo). A backslash not followed by three octal digits is kept.
std::string UnescapeMountField(std::string_view s);

// Reads and parses a mountinfo file, e.g. "/proc/self/mountinfo" or "/proc/1234/mountinfo".
// Returns the errors of ReadWholeFile() and ParseMountInfo(), prefixed with the path.
absl::StatusOr<std::vector<MountInfo>> ReadMountInfo(const std::string& path);

// How mount and unmount events reach a mount, from its optional fields.
enum class Propagation {
  kPrivate,         // No tags: nothing propagates to or from it.
  kShared,          // "shared:N" only.
  kSlave,           // "master:N" (and maybe "propagate_from:N"), no "shared:".
  kSharedAndSlave,  // Both "shared:N" and "master:M".
  kUnbindable,      // "unbindable" (private, and cannot be bind-mounted).
};

Propagation PropagationOf(const MountInfo& mount);

// "private", "shared", "slave", "shared+slave" or "unbindable", as used in messages.
std::string_view PropagationName(Propagation propagation);

}  // namespace rbdcsi

#endif  // RBDCSI_MOUNTER_MOUNTINFO_H_
