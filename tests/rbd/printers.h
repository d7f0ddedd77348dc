// Readable gtest output for rbd/ value types.
#ifndef RBDCSI_TESTS_RBD_PRINTERS_H_
#define RBDCSI_TESTS_RBD_PRINTERS_H_

#include <ostream>

#include "rbd/mapper.h"

namespace rbdcsi {

inline void PrintTo(const ImageSpec& spec, std::ostream* os) { *os << spec.ToString(); }

inline void PrintTo(const MappedDevice& d, std::ostream* os) {
  *os << d.path << " (" << d.major << ":" << d.minor << ") " << d.image.ToString();
}

}  // namespace rbdcsi

#endif  // RBDCSI_TESTS_RBD_PRINTERS_H_
