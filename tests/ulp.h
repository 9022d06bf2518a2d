// Helpers to measure floating-point error in ulps against a float64 reference.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace specstate::test {

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Distance in representable floats between a and b (same sign assumed or zero crossing).
inline int64_t ulp_distance(float a, float b) {
  if (a == b) return 0;
  auto key = [](float f) {
    const int64_t u = bits_of(f) & 0x7FFFFFFF;
    return std::signbit(f) ? -u : u;
  };
  return std::llabs(key(a) - key(b));
}

// |got - exact| in units of the float ulp at `exact` (2^-149 at the least).
inline double ulp_error(float got, double exact) {
  if (std::isinf(exact) || std::isinf(got))
    return got == exact ? 0.0 : std::numeric_limits<double>::infinity();
  const double mag = std::fabs(exact);
  int e = 0;
  std::frexp(mag, &e);  // mag in [2^(e-1), 2^e)
  const double ulp = std::ldexp(1.0, std::max(e - 24, -149));
  return std::fabs(double(got) - exact) / ulp;
}

}  // namespace specstate::test
