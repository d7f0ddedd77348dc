// LoopImageStore as an ImageStore: the controller's view of the sparse image files.
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "nlohmann/json.hpp"
#include "rbd/loop_images.h"

namespace rbdcsi {
namespace {

absl::StatusOr<ImageSpec> SpecOf(const ImageId& id) {
  if (!id.cluster_id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image ", id.ToString(), ": the loop backend holds only images without a cluster id"));
  }
  const ImageSpec spec = id.Spec();
  RETURN_IF_ERROR(LoopImageStore::ValidateSpec(spec));
  return spec;
}

std::chrono::system_clock::time_point ToTimePoint(const struct timespec& ts) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

}  // namespace

absl::StatusOr<ImageInfo> LoopImageStore::Create(const ImageId& id, uint64_t size_bytes,
                                                 const CreateOptions&) {
  ASSIGN_OR_RETURN(const ImageSpec spec, SpecOf(id));
  RETURN_IF_ERROR(Create(spec, size_bytes));
  return Info(id);
}

absl::Status LoopImageStore::Delete(const ImageId& id) {
  ASSIGN_OR_RETURN(const ImageSpec spec, SpecOf(id));
  absl::StatusOr<std::vector<std::string>> watchers = Watchers(id);
  if (absl::IsNotFound(watchers.status())) return absl::OkStatus();
  RETURN_IF_ERROR(watchers.status());
  if (!watchers->empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", id.ToString(), " is in use: mapped at ",
                     absl::StrJoin(*watchers, ", "), " on this node"));
  }
  return Delete(spec);
}

absl::Status LoopImageStore::Resize(const ImageId& id, uint64_t new_size) {
  ASSIGN_OR_RETURN(const ImageSpec spec, SpecOf(id));
  return Resize(spec, new_size);
}

absl::StatusOr<ImageInfo> LoopImageStore::Info(const ImageId& id) {
  ASSIGN_OR_RETURN(const ImageSpec spec, SpecOf(id));
  const std::string path = PathOf(spec);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("examining image ", spec.ToString(), " at ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InternalError(
        absl::StrCat("image ", spec.ToString(), " at ", path, " is not a regular file"));
  }
  ImageInfo info;
  info.id = id;
  info.size_bytes = static_cast<uint64_t>(st.st_size);
  info.created = ToTimePoint(st.st_mtim);  // files keep no portable birth time
  return info;
}

absl::StatusOr<std::vector<ImageInfo>> LoopImageStore::List(std::string_view pool) {
  ASSIGN_OR_RETURN(const std::vector<ImageSpec> specs, List());
  std::vector<ImageInfo> out;
  for (const ImageSpec& spec : specs) {
    if (!pool.empty() && spec.pool != pool) continue;
    const ImageId id = ImageId::FromSpec("", spec);
    if (!ValidateImageId(id).ok()) continue;  // a name too long for a volume id
    absl::StatusOr<ImageInfo> info = Info(id);
    if (info.ok()) out.push_back(*std::move(info));  // else deleted meanwhile
  }
  return out;
}

absl::StatusOr<uint64_t> LoopImageStore::Capacity(std::string_view) {
  struct statvfs vfs {};
  if (statvfs(data_dir_.c_str(), &vfs) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("statfs of ", data_dir_));
  }
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

absl::StatusOr<std::vector<std::string>> LoopImageStore::Watchers(const ImageId& id) {
  ASSIGN_OR_RETURN(const ImageSpec spec, SpecOf(id));
  RETURN_IF_ERROR(Size(spec).status());
  std::vector<std::string> out;
  if (mapped_ == nullptr) return out;
  ASSIGN_OR_RETURN(const std::vector<MappedDevice> devices, mapped_->List());
  for (const MappedDevice& d : devices) {
    if (d.image == spec) out.push_back(d.path);
  }
  return out;
}

absl::Status LoopImageStore::SetQos(const ImageId& id,
                                    const std::map<std::string, uint64_t>& limits) {
  ASSIGN_OR_RETURN(const ImageSpec spec, SpecOf(id));
  const std::string path = PathOf(spec);
  // Recorded beside the data (an extended attribute of the image file, gone with it); a loop
  // device has no I/O limits to apply them to.
  constexpr char kAttr[] = "user.rbdcsi.qos";
  nlohmann::json qos = nlohmann::json::object();
  char buf[1024];
  if (const ssize_t n = getxattr(path.c_str(), kAttr, buf, sizeof(buf)); n > 0) {
    qos = nlohmann::json::parse(std::string(buf, n), nullptr, false);
    if (!qos.is_object()) qos = nlohmann::json::object();
  } else if (errno == ENOENT) {
    return absl::NotFoundError(absl::StrCat("image ", spec.ToString(), " does not exist"));
  }
  for (const auto& [name, value] : limits) {
    if (value == 0) {
      qos.erase(name);
    } else {
      qos[name] = value;
    }
  }
  const std::string text = qos.dump();
  if (setxattr(path.c_str(), kAttr, text.data(), text.size(), 0) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("recording the I/O limits of ", spec.ToString()));
  }
  return absl::OkStatus();
}

}  // namespace rbdcsi
