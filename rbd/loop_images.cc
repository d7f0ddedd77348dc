#include "rbd/loop_images.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/fd.h"
#include "base/file_util.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

constexpr absl::string_view kImageSuffix = ".img";

// Names of the entries of `dir` of file type `type` (DT_DIR, DT_REG; symlinks are not
// followed), sorted; an absent directory has none.
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir, unsigned char type) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (d == nullptr) {
    if (errno == ENOENT) return names;
    return ErrnoToStatus(errno, absl::StrCat("listing ", dir));
  }
  errno = 0;
  while (dirent* e = readdir(d.get())) {
    unsigned char t = e->d_type;
    struct stat st;
    if (t == DT_UNKNOWN && fstatat(dirfd(d.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      t = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
    }
    if (t == type) names.emplace_back(e->d_name);
    errno = 0;
  }
  if (errno != 0) return ErrnoToStatus(errno, absl::StrCat("listing ", dir));
  std::sort(names.begin(), names.end());
  return names;
}

// Removes a temporary file unless released.
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string path) : path_(std::move(path)) {}
  ~TempFileGuard() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

}  // namespace

LoopImageStore::LoopImageStore(std::string data_dir, Mapper* mapped)
    : data_dir_(std::move(data_dir)), mapped_(mapped) {
  while (data_dir_.size() > 1 && data_dir_.back() == '/') data_dir_.pop_back();
}

absl::Status LoopImageStore::ValidateName(std::string_view name) {
  return ValidateImageName(name, "name");
}

absl::Status LoopImageStore::ValidateSpec(const ImageSpec& spec) {
  if (!spec.rados_namespace.empty()) {
    return absl::InvalidArgumentError("the loop backend has no rados namespaces");
  }
  RETURN_IF_ERROR(Annotate(ValidateName(spec.pool), "invalid pool"));
  return Annotate(ValidateName(spec.image), "invalid image");
}

std::string LoopImageStore::ImagesDir() const { return absl::StrCat(data_dir_, "/images"); }

std::string LoopImageStore::PathOf(const ImageSpec& spec) const {
  return absl::StrCat(ImagesDir(), "/", spec.pool, "/", spec.image, kImageSuffix);
}

std::optional<ImageSpec> LoopImageStore::SpecOfPath(std::string_view images_dir,
                                                    std::string_view path_view) {
  absl::string_view path(path_view.data(), path_view.size());
  const std::string prefix = absl::StrCat(std::string(images_dir), "/");
  if (!absl::ConsumePrefix(&path, prefix)) return std::nullopt;
  if (!absl::ConsumeSuffix(&path, kImageSuffix)) return std::nullopt;
  const size_t slash = path.find('/');
  if (slash == absl::string_view::npos) return std::nullopt;
  ImageSpec spec{std::string(path.substr(0, slash)), std::string(path.substr(slash + 1))};
  if (!ValidateSpec(spec).ok()) return std::nullopt;
  return spec;
}

absl::StatusOr<uint64_t> LoopImageStore::RoundSize(uint64_t size) {
  if (size > kMaxImageSize) {
    return absl::OutOfRangeError(absl::StrCat("image size ", size, " bytes is above the largest, ",
                                              kMaxImageSize, " bytes"));
  }
  return (size + kSectorSize - 1) / kSectorSize * kSectorSize;
}

absl::Status LoopImageStore::Create(const ImageSpec& spec, uint64_t size_bytes) {
  RETURN_IF_ERROR(ValidateSpec(spec));
  if (size_bytes == 0) return absl::InvalidArgumentError("image size must be larger than 0");
  ASSIGN_OR_RETURN(const uint64_t size, RoundSize(size_bytes));
  const std::string path = PathOf(spec);
  const std::string what = absl::StrCat("creating image ", spec.ToString(), " at ", path);
  const std::string dir = Dirname(path);
  RETURN_IF_ERROR(Annotate(MakeDirs(dir, 0700), what));

  // Names starting with '.' are never valid images, so List() cannot see the temporary file.
  std::string temp = absl::StrCat(dir, "/.", spec.image, ".XXXXXX");
  UniqueFd fd(mkostemp(temp.data(), O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, what);
  TempFileGuard guard(temp);
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return ErrnoToStatus(errno, what);
  if (fsync(fd.get()) != 0) return ErrnoToStatus(errno, what);
  fd.reset();
  // RENAME_NOREPLACE makes "exists" and "create" one atomic step.
  if (renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat(what, ": the image already exists"));
    }
    return ErrnoToStatus(errno, what);
  }
  guard.Release();
  return Annotate(FsyncDir(dir), what);
}

absl::Status LoopImageStore::Resize(const ImageSpec& spec, uint64_t new_size) {
  RETURN_IF_ERROR(ValidateSpec(spec));
  ASSIGN_OR_RETURN(const uint64_t size, RoundSize(new_size));
  const std::string path = PathOf(spec);
  const std::string what = absl::StrCat("resizing image ", spec.ToString(), " at ", path);
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return ErrnoToStatus(errno, what);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, what);
  const uint64_t current = static_cast<uint64_t>(st.st_size);
  if (size < current) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": cannot shrink from ", current, " to ", size, " bytes"));
  }
  if (size == current) return absl::OkStatus();
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return ErrnoToStatus(errno, what);
  if (fsync(fd.get()) != 0) return ErrnoToStatus(errno, what);
  return absl::OkStatus();
}

absl::Status LoopImageStore::Delete(const ImageSpec& spec) {
  RETURN_IF_ERROR(ValidateSpec(spec));
  const std::string path = PathOf(spec);
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoToStatus(errno, absl::StrCat("deleting image ", spec.ToString(), " at ", path));
  }
  return FsyncDir(Dirname(path));
}

absl::StatusOr<uint64_t> LoopImageStore::Size(const ImageSpec& spec) const {
  RETURN_IF_ERROR(ValidateSpec(spec));
  const std::string path = PathOf(spec);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("examining image ", spec.ToString(), " at ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InternalError(
        absl::StrCat("image ", spec.ToString(), " at ", path, " is not a regular file"));
  }
  return static_cast<uint64_t>(st.st_size);
}

absl::StatusOr<std::vector<ImageSpec>> LoopImageStore::List() const {
  const std::string images = ImagesDir();
  ASSIGN_OR_RETURN(const std::vector<std::string> pools, ListDir(images, DT_DIR));
  std::vector<ImageSpec> specs;
  for (const std::string& pool : pools) {
    if (!ValidateName(pool).ok()) continue;
    ASSIGN_OR_RETURN(std::vector<std::string> files,
                     ListDir(absl::StrCat(images, "/", pool), DT_REG));
    for (std::string& file : files) {
      if (!absl::EndsWith(file, kImageSuffix)) continue;
      file.resize(file.size() - kImageSuffix.size());
      if (ValidateName(file).ok()) specs.push_back(ImageSpec{pool, std::move(file)});
    }
  }
  return specs;
}

}  // namespace rbdcsi
