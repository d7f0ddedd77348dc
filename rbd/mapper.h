// Mapping an image to a local block device and back.
#ifndef RBDCSI_RBD_MAPPER_H_
#define RBDCSI_RBD_MAPPER_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/status.h"

namespace rbdcsi {

// An image as a mapper sees it: the cluster is reached through the mapper's own options.
struct ImageSpec {
  ImageSpec() = default;
  ImageSpec(std::string pool, std::string image, std::string rados_namespace = "")
      : pool(std::move(pool)),
        image(std::move(image)),
        rados_namespace(std::move(rados_namespace)) {}

  std::string pool;
  std::string image;
  std::string rados_namespace;  // empty: the pool's default namespace

  // "pool/image", or "pool/namespace/image"
  std::string ToString() const {
    return rados_namespace.empty() ? pool + "/" + image
                                   : pool + "/" + rados_namespace + "/" + image;
  }
  bool operator==(const ImageSpec& o) const {
    return pool == o.pool && image == o.image && rados_namespace == o.rados_namespace;
  }
};

struct MapOptions {
  ImageSpec image;
  bool read_only = false;
  // Read-write and no other client may write (every access mode but the multi-writer one):
  // mappers that can refuse when another client uses the image, and lock it, do (krbd).
  bool single_writer = false;
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

// What a mapper needs from a NodeStageVolume request, and how it behaves: the node core reads
// these instead of comparing mapper names.
struct MapperTraits {
  // volume_context keys Map() needs (e.g. "monitors" -> MapOptions::monitors).
  std::vector<std::string> required_context;
  // secrets keys Map() needs ("userID" -> MapOptions::user, "userKey" -> MapOptions::key).
  std::vector<std::string> required_secrets;
  // True when Unmap() refuses (IsBusy()) while anything holds the device. False for mappers
  // whose unmap pulls a device out from under its holders (rbd-nbd): the node then scans for
  // holders before unmapping and refuses while there are any.
  bool unmap_refuses_busy = true;
  // True when the images live in a Ceph cluster (the image identity then has a cluster part,
  // from volume_context clusterID or, for static volumes, from the monitors).
  bool ceph_images = false;
  // True when List() returns only devices this plugin mapped, told apart by the kernel's own
  // record of each (a loop device's backing file in the plugin's own directory). False when it
  // lists every device of its kind (every /dev/rbdN, every rbd-nbd device), some of which an
  // administrator or another plugin may have mapped: `rbdcsi gc` never unmaps those.
  bool lists_only_own = false;
};

// Implementations are thread-safe for different images; callers serialize per image.
class Mapper {
 public:
  virtual ~Mapper() = default;

  // "loop", "krbd", ...: the value of the `mapper` volume-context key.
  virtual std::string_view Name() const = 0;

  // Constant for the mapper's life.
  virtual MapperTraits Traits() const = 0;

  // Maps the image and returns the new device. It does not look for an existing mapping;
  // callers consult List() first. NOT_FOUND when the image does not exist; INVALID_ARGUMENT
  // for a malformed spec; UNAVAILABLE when the cluster could not be reached.
  virtual absl::StatusOr<MappedDevice> Map(const MapOptions& options) = 0;

  // Unmaps the device. A device that is not mapped (any more) is OK. When anything holds the
  // device, returns a status for which IsBusy() is true (FAILED_PRECONDITION) and leaves the
  // device mapped: never a lazy or deferred detach. `device` comes from a Find() or List() the
  // caller has just made: Unmap checks at most that one device (that it still maps
  // `device.image`) and does not list the node's devices again.
  virtual absl::Status Unmap(const MappedDevice& device) = 0;

  // Lists the devices this mapper has mapped on this node (only its own).
  virtual absl::StatusOr<std::vector<MappedDevice>> List() = 0;

  // A device this mapper has mapped for `image`: the one at `preferred_path` (the device a
  // record names) when that still maps the image, else any; nullopt when there is none. What
  // List() says, narrowed to one image: mappers that can look at one device or one image without
  // reading everything about every device override it, so that staging or unstaging many
  // volumes at once does not cost a full listing of the node per volume.
  virtual absl::StatusOr<std::optional<MappedDevice>> Find(const ImageSpec& image,
                                                           const std::string& preferred_path) {
    ASSIGN_OR_RETURN(std::vector<MappedDevice> mapped, List());
    return PickMapping(mapped, image, preferred_path);
  }

  // Find()'s choice among `mapped`.
  static std::optional<MappedDevice> PickMapping(const std::vector<MappedDevice>& mapped,
                                                 const ImageSpec& image,
                                                 const std::string& preferred_path) {
    std::optional<MappedDevice> any;
    for (const MappedDevice& d : mapped) {
      if (!(d.image == image)) continue;
      if (d.path == preferred_path) return d;
      if (!any.has_value()) any = d;
    }
    return any;
  }

  // The processes this mapper runs to serve `device` (rbd-nbd's daemon): they keep the device
  // open by design, so a holder scan must not count them, or unstage would refuse forever.
  // Empty for mappers that run none (the kernel serves krbd and loop devices).
  virtual std::vector<pid_t> Servers(const MappedDevice& /*device*/) { return {}; }

  // Why `device`, which this mapper mapped, no longer serves its image, when the mapper can
  // tell more than "no longer mapped" (a dead rbd-nbd daemon); "" otherwise.
  virtual std::string WhyGone(const MappedDevice& /*device*/) { return ""; }

  // Makes the device reflect the image's current size after the image grew.
  virtual absl::Status RefreshCapacity(const MappedDevice& device) = 0;
};

}  // namespace rbdcsi

#endif  // RBDCSI_RBD_MAPPER_H_
