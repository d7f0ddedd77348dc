#include "rbd/key_file.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/status.h"
#include "base/file_util.h"

namespace rbdcsi {

absl::StatusOr<std::unique_ptr<KeyFile>> KeyFile::Create(const std::string& parent,
                                                         const std::string& key) {
  const std::string what = absl::StrCat("writing the cephx key file under ", parent);
  RETURN_IF_ERROR(Annotate(MakeDirs(parent, 0700), what));
  std::string dir = absl::StrCat(parent, "/rbdcsi-key-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) return ErrnoToStatus(errno, what);  // mode 0700
  std::string path = absl::StrCat(dir, "/key");
  // From here on the destructor cleans up whatever exists.
  std::unique_ptr<KeyFile> file(new KeyFile(dir, path));
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoToStatus(errno, what);
  if (fchmod(fd.get(), 0600) != 0) return ErrnoToStatus(errno, what);
  size_t written = 0;
  while (written < key.size()) {
    ssize_t n = write(fd.get(), key.data() + written, key.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, what);
    written += static_cast<size_t>(n);
  }
  if (close(fd.release()) != 0) return ErrnoToStatus(errno, what);
  return file;
}

int KeyFile::RemoveStale(const std::string& parent) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    if (entry.path().filename().string().rfind("rbdcsi-key-", 0) != 0) continue;
    std::error_code rm;
    std::filesystem::remove_all(entry.path(), rm);
    if (!rm) ++removed;
  }
  return removed;
}

bool KeyFile::InMemory(const std::string& parent) {
  struct statfs fs {};
  if (statfs(parent.c_str(), &fs) != 0) return false;
  return fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC;
}

KeyFile::~KeyFile() {
  unlink(path_.c_str());
  rmdir(dir_.c_str());
}

}  // namespace rbdcsi
