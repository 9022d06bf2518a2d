// The bit-pattern stride of the float sweeps (tests/test_math.cpp, tests/test_cpu_math.cpp): odd,
// so every exponent and mantissa pattern class is hit. 61 by default; SPECSTATE_EXHAUSTIVE=1
// visits every float; SPECSTATE_SWEEP_STRIDE=N (odd) another stride (the aarch64 preset's tests
// run under qemu-user, about 30 times slower: tests/CMakeLists.txt sets 1021 there).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

namespace specstate::test {

inline uint32_t sweep_stride() {
  if (std::getenv("SPECSTATE_EXHAUSTIVE")) return 1;
  if (const char* s = std::getenv("SPECSTATE_SWEEP_STRIDE")) {
    const unsigned long n = std::stoul(s);
    if (n % 2 == 1) return uint32_t(n);
  }
  return 61;
}

}  // namespace specstate::test
