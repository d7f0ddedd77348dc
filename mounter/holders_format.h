// Presenting a holder scan: a table and JSON for `rbdcsi holders`, and the operator message that
// unstage returns when a device stays busy (DESIGN.md: one clause per holder, each with its fix).
//
// All functions are pure and thread-safe.
#ifndef RBDCSI_MOUNTER_HOLDERS_FORMAT_H_
#define RBDCSI_MOUNTER_HOLDERS_FORMAT_H_

#include <string>
#include <string_view>

#include "mounter/holders.h"
#include "nlohmann/json.hpp"

namespace rbdcsi {

// One row per holder under a header: KIND PID COMMAND CONTAINER POD NAMESPACE
// MOUNT POINT / FILE PROPAGATION. Container ids are shortened to 12 digits; "-" marks an empty
// cell. Returns "" for a report without holders.
std::string FormatHoldersTable(const HolderReport& report);

// One line: how the scan ran ("scanned 1003 processes and 101 mount namespaces in 12.1 ms;
// namespaces without a process: kernel enumeration").
std::string FormatScanSummary(const HolderReport& report);

// The whole report as JSON, `device` being the path the user named (may be empty).
nlohmann::json HoldersToJson(std::string_view device, const HolderReport& report);

// The message for a device that could not be unmapped, e.g.
//   volume pvc-123: /dev/rbd3 (250:0) is still in use and was not unmapped: mounted at /x in mount
//   namespace 4026532871 of pid 21839 (node_exporter, container 3f2a9c7f1955…, pod 7c1e…),
//   propagation private — it will not be released by the host unmount; give that pod's host mount
//   mountPropagation: HostToContainer or restart it.
// At most 8 holders are spelled out; the rest are counted.
std::string DescribeHolders(std::string_view volume_id, std::string_view device, unsigned major,
                            unsigned minor, const HolderReport& report);

// The clause for one holder, as used by DescribeHolders().
std::string DescribeHolder(const Holder& holder);

}  // namespace rbdcsi

#endif  // RBDCSI_MOUNTER_HOLDERS_FORMAT_H_
