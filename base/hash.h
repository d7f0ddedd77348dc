// A small stable hash for naming things on disk (not for security).
#ifndef RBDCSI_BASE_HASH_H_
#define RBDCSI_BASE_HASH_H_

#include <cstdint>
#include <string_view>

namespace rbdcsi {

// 64-bit FNV-1a: the same input gives the same value on every run and machine (unlike
// absl::Hash, which is seeded per process), so it can name files that must be found again.
inline uint64_t StableHash64(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace rbdcsi

#endif  // RBDCSI_BASE_HASH_H_
