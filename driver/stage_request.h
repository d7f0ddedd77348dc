// What a NodeStageVolume request gives the mapper besides the image: the cephx credentials, and
// the volume-context keys and secrets the mapper's traits require.
#ifndef RBDCSI_DRIVER_STAGE_REQUEST_H_
#define RBDCSI_DRIVER_STAGE_REQUEST_H_

#include <string>

#include "absl/status/status.h"
#include "csi.pb.h"
#include "driver/volume_record.h"
#include "rbd/mapper.h"

namespace rbdcsi {

// The value of `key` in a request's map (volume context, secrets); empty when absent.
std::string RequestValue(const google::protobuf::Map<std::string, std::string>& map,
                         const std::string& key);

// The cephx user (into the record and the map options) and key (into the map options only).
// rbdcsi's shape: secrets userID and userKey. The in-tree kubernetes.io/rbd shape (static PVs
// written by `rbdcsi migrate-pv`): volume_context.user (default admin) and a Secret of type
// kubernetes.io/rbd holding the key under `key`. INVALID_ARGUMENT, without echoing it, for a
// user that starts with '-' or holds whitespace or control characters.
absl::Status ReadCredentials(const csi::v1::NodeStageVolumeRequest& req, VolumeRecord& r,
                             MapOptions& map_options);

// INVALID_ARGUMENT naming every volume-context key and secret the mapper needs and lacks (the
// monitors may come from the cluster config instead: `r.monitors`).
absl::Status CheckRequired(const MapperTraits& traits, const csi::v1::NodeStageVolumeRequest& req,
                           const VolumeRecord& r, const MapOptions& map_options);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_STAGE_REQUEST_H_
