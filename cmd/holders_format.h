// Rendering a holder scan for `rbdcsi holders`: a table for people and JSON for programs.
//
// All functions are pure and thread-safe.
#ifndef RBDCSI_CMD_HOLDERS_FORMAT_H_
#define RBDCSI_CMD_HOLDERS_FORMAT_H_

#include <string>
#include <string_view>

#include "holders/holders.h"
#include "nlohmann/json.hpp"

namespace rbdcsi {

// One row per holder under a header: KIND PID COMMAND CONTAINER POD NAMESPACE
// MOUNT POINT / FILE PROPAGATION. Container ids are shortened to 12 digits; "-" marks an empty
// cell. Returns "" for a report without holders.
std::string FormatHoldersTable(const HolderReport& report);

// The whole report as JSON, `device` being the path the user named (may be empty). Each holder
// carries its operator clause (DescribeHolder) as "description".
nlohmann::json HoldersToJson(std::string_view device, const HolderReport& report);

}  // namespace rbdcsi

#endif  // RBDCSI_CMD_HOLDERS_FORMAT_H_
