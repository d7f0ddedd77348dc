// Mapping an image to a local block device and back.
#ifndef RBDCSI_RBD_MAPPER_H_
#define RBDCSI_RBD_MAPPER_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rbdcsi {

struct ImageSpec {
  std::string pool;
  std::string image;

  std::string ToString() const { return pool + "/" + image; }  // "pool/image"
  bool operator==(const ImageSpec& o) const { return pool == o.pool && image == o.image; }
};

struct MapOptions {
  ImageSpec image;
  bool read_only = false;
  // krbd only.
  std::string monitors;  // comma-separated monitor addresses
  std::string user;      // cephx user id, without "client."
  std::string key;       // cephx key: a secret; never logged, never put on argv or in errors
};

struct MappedDevice {
  std::string path;  // e.g. /dev/rbd0 or /dev/loop3
  unsigned major = 0;
  unsigned minor = 0;
  ImageSpec image;

  bool operator==(const MappedDevice& o) const {
    return path == o.path && major == o.major && minor == o.minor && image == o.image;
  }
};

// Implementations are thread-safe for different images; callers serialize per volume.
class Mapper {
 public:
  virtual ~Mapper() = default;

  // "loop", "krbd", ...: the value of the `mapper` volume-context key.
  virtual std::string_view Name() const = 0;

  // Maps the image and returns the new device. It does not look for an existing mapping;
  // callers consult List() first. NOT_FOUND when the image does not exist; INVALID_ARGUMENT
  // for a malformed spec; UNAVAILABLE when the cluster could not be reached.
  virtual absl::StatusOr<MappedDevice> Map(const MapOptions& options) = 0;

  // Unmaps the device. A device that is not mapped (any more) is OK. When anything holds the
  // device, returns a status for which IsBusy() is true (FAILED_PRECONDITION) and leaves the
  // device mapped: never a lazy or deferred detach.
  virtual absl::Status Unmap(const MappedDevice& device) = 0;

  // Lists the devices this mapper has mapped on this node (only its own).
  virtual absl::StatusOr<std::vector<MappedDevice>> List() = 0;

  // Makes the device reflect the image's current size after the image grew.
  virtual absl::Status RefreshCapacity(const MappedDevice& device) = 0;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_MAPPER_H_
