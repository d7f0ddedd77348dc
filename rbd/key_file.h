// A cephx key handed to the rbd CLI as --keyfile, never on argv.
#ifndef RBDCSI_RBD_KEY_FILE_H_
#define RBDCSI_RBD_KEY_FILE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace rbdcsi {

// A key written to `<parent>/rbdcsi-key-XXXXXX/key`: the directory is created fresh (mode
// 0700), the file with mode 0600; both are removed by the destructor. Not copyable.
class KeyFile {
 public:
  // Creates `parent` (0700) if missing. The key never appears in the returned status.
  static absl::StatusOr<std::unique_ptr<KeyFile>> Create(const std::string& parent,
                                                         const std::string& key);
  ~KeyFile();
  KeyFile(const KeyFile&) = delete;
  KeyFile& operator=(const KeyFile&) = delete;

  const std::string& path() const { return path_; }

  // Removes key directories a crashed earlier run left under `parent` (call at start, before
  // any Create). Returns how many were removed.
  static int RemoveStale(const std::string& parent);

  // True when `parent` is on a memory filesystem (tmpfs, ramfs), where a key never reaches a
  // disk. False also when it cannot be checked.
  static bool InMemory(const std::string& parent);

 private:
  KeyFile(std::string dir, std::string path) : dir_(std::move(dir)), path_(std::move(path)) {}

  std::string dir_;
  std::string path_;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_KEY_FILE_H_
