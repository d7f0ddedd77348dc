// What the fuzz targets share: a check that aborts (so libFuzzer saves the input) when an
// invariant of the code under test does not hold.
#ifndef RBDCSI_TESTS_FUZZ_FUZZ_CHECK_H_
#define RBDCSI_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

#endif  // RBDCSI_TESTS_FUZZ_FUZZ_CHECK_H_
