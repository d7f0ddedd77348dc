// The logger the node service's parts (stager, finder, publisher) share: component "node".
#ifndef RBDCSI_DRIVER_NODE_LOG_H_
#define RBDCSI_DRIVER_NODE_LOG_H_

#include <memory>

#include "base/logging.h"

namespace rbdcsi {

// Created on first use, then kept: the node logs from its hot paths. Thread-safe.
inline const std::shared_ptr<spdlog::logger>& NodeLog() {
  static const std::shared_ptr<spdlog::logger> logger = Logger("node");
  return logger;
}

}  // namespace rbdcsi

#endif  // RBDCSI_DRIVER_NODE_LOG_H_
