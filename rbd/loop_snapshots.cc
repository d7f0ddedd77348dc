// Snapshots and clones of the loop backend: read-only copies of image files, made with FICLONE
// (a reflink: instant, shares blocks) where the filesystem supports it, else a sparse copy.
// A snapshot lives at <data_dir>/snapshots/<pool>/<snapshot>/<image>.img, so that a snapshot
// name is unique in its pool and the snapshot outlives the deletion of its image.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/file_util.h"
#include "base/status.h"
#include "rbd/loop_images.h"

namespace rbdcsi {
namespace {

namespace fs = std::filesystem;

std::chrono::system_clock::time_point MTime(const struct stat& st) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

// Copies the data of `in` to the empty file `out`: a reflink when possible, else only the
// data extents (holes stay holes).
absl::Status CopyData(int in, int out, off_t size, const std::string& what) {
  if (ioctl(out, FICLONE, in) == 0) return absl::OkStatus();
  off_t pos = 0;
  std::vector<char> buf(1 << 20);
  while (pos < size) {
    const off_t data = lseek(in, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      return ErrnoToStatus(errno, what);
    }
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    for (off_t at = data; at < hole;) {
      const ssize_t n = pread(in, buf.data(), std::min<off_t>(buf.size(), hole - at), at);
      if (n <= 0) return ErrnoToStatus(n < 0 ? errno : EIO, what);
      if (pwrite(out, buf.data(), n, at) != n) return ErrnoToStatus(errno, what);
      at += n;
    }
    pos = hole;
  }
  return absl::OkStatus();
}

// Makes `dst` a copy of `src` grown to `size` (0: the source's size), appearing atomically.
absl::Status CopyImageFile(const std::string& src, const std::string& dst, uint64_t size,
                           mode_t mode) {
  const std::string what = absl::StrCat("copying ", src, " to ", dst);
  UniqueFd in(open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return ErrnoToStatus(errno, what);
  struct stat st {};
  if (fstat(in.get(), &st) != 0) return ErrnoToStatus(errno, what);
  if (size != 0 && size < static_cast<uint64_t>(st.st_size)) {
    return absl::OutOfRangeError(
        absl::StrCat(what, ": the copy needs at least ", st.st_size, " bytes, not ", size));
  }
  if (access(dst.c_str(), F_OK) == 0) return absl::AlreadyExistsError(dst + " already exists");
  RETURN_IF_ERROR(MakeDirs(Dirname(dst), 0700));
  const std::string tmp = Dirname(dst) + "/.copy-" + fs::path(dst).filename().string();
  unlink(tmp.c_str());
  UniqueFd out(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!out.valid()) return ErrnoToStatus(errno, what);
  absl::Status st_copy = CopyData(in.get(), out.get(), st.st_size, what);
  const off_t final_size = size != 0 ? static_cast<off_t>(size) : st.st_size;
  if (st_copy.ok() && ftruncate(out.get(), final_size) != 0) st_copy = ErrnoToStatus(errno, what);
  if (st_copy.ok() && fsync(out.get()) != 0) st_copy = ErrnoToStatus(errno, what);
  if (st_copy.ok() && link(tmp.c_str(), dst.c_str()) != 0) st_copy = ErrnoToStatus(errno, what);
  unlink(tmp.c_str());
  if (st_copy.ok()) st_copy = FsyncDir(Dirname(dst));
  return st_copy;
}

}  // namespace

std::string LoopImageStore::SnapshotPath(const SnapshotId& id) const {
  return absl::StrCat(data_dir_, "/snapshots/", id.image.pool, "/", id.snapshot, "/",
                      id.image.image, ".img");
}

absl::StatusOr<SnapshotInfo> LoopImageStore::SnapshotInfoOf(const SnapshotId& id) const {
  struct stat st {};
  const std::string path = SnapshotPath(id);
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("snapshot ", EncodeSnapshotId(id), " does not exist"));
    }
    return ErrnoToStatus(errno, "examining snapshot " + path);
  }
  SnapshotInfo info;
  info.id = id;
  info.source = id.image;
  info.size_bytes = static_cast<uint64_t>(st.st_size);
  info.created = MTime(st);
  info.ready_to_use = true;
  return info;
}

absl::StatusOr<SnapshotInfo> LoopImageStore::CreateSnapshot(const ImageId& source,
                                                            std::string_view name) {
  const SnapshotId id{source, std::string(name)};
  RETURN_IF_ERROR(ValidateSnapshotId(id));
  if (!source.cluster_id.empty() || !source.rados_namespace.empty()) {
    return absl::InvalidArgumentError("the loop backend has images of no cluster or namespace");
  }
  RETURN_IF_ERROR(Size(source.Spec()).status());  // NOT_FOUND for a missing source
  // The name is unique in the pool: another image's snapshot of that name is another snapshot.
  const std::string dir = Dirname(SnapshotPath(id));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename();
    if (file != source.image + ".img" && absl::EndsWith(file, ".img")) {
      return absl::AlreadyExistsError(absl::StrCat("snapshot name ", AsAbsl(name),
                                                   " is taken by a ", "snapshot of image ",
                                                   file.substr(0, file.size() - 4)));
    }
  }
  if (absl::StatusOr<SnapshotInfo> have = SnapshotInfoOf(id); have.ok()) return have;
  RETURN_IF_ERROR(CopyImageFile(PathOf(source.Spec()), SnapshotPath(id), 0, 0400));
  return SnapshotInfoOf(id);
}

absl::Status LoopImageStore::DeleteSnapshot(const SnapshotId& id) {
  if (!ValidateSnapshotId(id).ok() || !id.image.cluster_id.empty()) return absl::OkStatus();
  const std::string path = SnapshotPath(id);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, "removing snapshot " + path);
  }
  rmdir(Dirname(path).c_str());  // only when empty
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SnapshotInfo>> LoopImageStore::ListSnapshots(
    const std::optional<ImageId>& source) {
  std::vector<SnapshotInfo> out;
  std::error_code ec;
  for (const auto& pool : fs::directory_iterator(data_dir_ + "/snapshots", ec)) {
    for (const auto& snap : fs::directory_iterator(pool.path(), ec)) {
      for (const auto& file : fs::directory_iterator(snap.path(), ec)) {
        const std::string name = file.path().filename();
        if (!absl::EndsWith(name, ".img")) continue;
        const SnapshotId id{
            ImageId("", pool.path().filename(), "", name.substr(0, name.size() - 4)),
            snap.path().filename()};
        if (!ValidateSnapshotId(id).ok() || (source && !(id.image == *source))) continue;
        absl::StatusOr<SnapshotInfo> info = SnapshotInfoOf(id);
        if (info.ok()) out.push_back(*std::move(info));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const SnapshotInfo& a, const SnapshotInfo& b) {
    return EncodeSnapshotId(a.id) < EncodeSnapshotId(b.id);
  });
  return out;
}

absl::StatusOr<ImageInfo> LoopImageStore::CloneFromSnapshot(const SnapshotId& snapshot,
                                                            const ImageId& dst,
                                                            uint64_t size_bytes) {
  RETURN_IF_ERROR(ValidateSnapshotId(snapshot));
  RETURN_IF_ERROR(SnapshotInfoOf(snapshot).status());
  RETURN_IF_ERROR(ValidateImageId(dst));
  ASSIGN_OR_RETURN(const uint64_t size,
                   size_bytes == 0 ? absl::StatusOr<uint64_t>(uint64_t{0}) : RoundSize(size_bytes));
  RETURN_IF_ERROR(CopyImageFile(SnapshotPath(snapshot), PathOf(dst.Spec()), size, 0600));
  return Info(dst);
}

absl::StatusOr<ImageInfo> LoopImageStore::CloneFromImage(const ImageId& src, const ImageId& dst,
                                                         uint64_t size_bytes) {
  RETURN_IF_ERROR(ValidateImageId(dst));
  RETURN_IF_ERROR(Size(src.Spec()).status());
  ASSIGN_OR_RETURN(const uint64_t size,
                   size_bytes == 0 ? absl::StatusOr<uint64_t>(uint64_t{0}) : RoundSize(size_bytes));
  RETURN_IF_ERROR(CopyImageFile(PathOf(src.Spec()), PathOf(dst.Spec()), size, 0600));
  return Info(dst);
}

}  // namespace rbdcsi
