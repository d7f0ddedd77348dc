// What the operator reads about a holder scan: the message unstage returns when a device stays
// busy (DESIGN.md: one clause per holder, each with its fix, in Kubernetes terms such as
// `mountPropagation: HostToContainer`), and the one-line summary of how the scan ran. `rbdcsi
// holders` (cmd/) shows the same clauses beside its table.
//
// All functions are pure and thread-safe.
#ifndef RBDCSI_DRIVER_HOLDERS_MESSAGE_H_
#define RBDCSI_DRIVER_HOLDERS_MESSAGE_H_

#include <string>
#include <string_view>

#include "holders/holders.h"

namespace rbdcsi {

// The message for a device that could not be unmapped, e.g.
//   volume pvc-123: /dev/rbd3 (250:0) is still in use and was not unmapped: mounted at /x in mount
//   namespace 4026532871 of pid 21839 (node_exporter, container 3f2a9c7f1955…, pod 7c1e…),
//   propagation private — it will not be released by the host unmount; give that pod's host mount
//   mountPropagation: HostToContainer or restart it.
// At most 8 holders are spelled out; the rest are counted.
std::string DescribeHolders(std::string_view volume_id, std::string_view device, unsigned major,
                            unsigned minor, const HolderReport& report);

// Who a holder is, for messages and logs: "pid 21839 (node_exporter, container node-exporter
// 3f2a9c7f1955…, pod monitoring/node-exporter-x7k2p 7c1e2f3a-…)".
std::string DescribeWho(const Holder& holder);

// The clause for one holder, as used by DescribeHolders().
std::string DescribeHolder(const Holder& holder);

// One line: how the scan ran ("scanned 1003 processes and 101 mount namespaces in 12.1 ms;
// namespaces without a process: kernel enumeration").
std::string FormatScanSummary(const HolderReport& report);

// A container id shortened to its first 12 digits, as the runtimes print it.
std::string ShortContainerId(const std::string& id);

// "dm-0", or "dm-0 (vg0-data)" for a device-mapper device.
std::string StackedDeviceName(const StackedDevice& device);

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_HOLDERS_MESSAGE_H_
