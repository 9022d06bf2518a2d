#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "core/numerics/bf16.h"
#include "tests/ulp.h"

namespace specstate::test {
namespace {

// Reference: round to nearest even computed on the value, not the bit formula.
uint16_t reference_round(float f) {
  const uint32_t u = bits_of(f);
  if (std::isnan(f)) return num::kBf16CanonicalNan;
  const uint32_t truncated = u & 0xFFFF0000u;
  const uint32_t rest = u & 0xFFFFu;
  uint32_t up = truncated + 0x10000u;
  if (rest > 0x8000u || (rest == 0x8000u && (truncated & 0x10000u))) return uint16_t(up >> 16);
  return uint16_t(truncated >> 16);
}

// Every upper half (sign, exponent, 7 mantissa bits) with the lower halves that decide the
// rounding: zero, just below / at / just above the halfway point, and the extremes.
// SPECSTATE_EXHAUSTIVE=1 checks all 2^32 floats.
TEST(Bf16, MatchesRoundToNearestEven) {
  uint64_t mismatches = 0, checked = 0;
  auto check = [&](uint32_t u) {
    const float f = float_of(u);
    if (num::bf16_from_float(f) != reference_round(f)) ++mismatches;
    ++checked;
  };
  if (std::getenv("SPECSTATE_EXHAUSTIVE")) {
    for (uint64_t u = 0; u <= 0xFFFFFFFFull; ++u)
      check(uint32_t(u));
  } else {
    const uint32_t lows[] = {0x0000, 0x0001, 0x1234, 0x7FFE, 0x7FFF,
                             0x8000, 0x8001, 0xC000, 0xFFFF};
    for (uint32_t hi = 0; hi <= 0xFFFF; ++hi) {
      for (uint32_t lo : lows)
        check((hi << 16) | lo);
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << checked;
}

TEST(Bf16, SpecialValues) {
  EXPECT_EQ(num::bf16_from_float(0.0f), 0x0000);
  EXPECT_EQ(num::bf16_from_float(-0.0f), 0x8000);
  EXPECT_EQ(num::bf16_from_float(INFINITY), 0x7F80);
  EXPECT_EQ(num::bf16_from_float(-INFINITY), 0xFF80);
  EXPECT_EQ(num::bf16_from_float(NAN), num::kBf16CanonicalNan);
  EXPECT_EQ(num::bf16_from_float(float_of(0xFFC12345u)), num::kBf16CanonicalNan);
  EXPECT_EQ(num::bf16_from_float(float_of(0x7F800001u)), num::kBf16CanonicalNan);  // signalling
  // The largest finite float rounds past the largest bf16: infinity.
  EXPECT_EQ(num::bf16_from_float(float_of(0x7F7FFFFFu)), 0x7F80);
  // Ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> 1.
  EXPECT_EQ(num::bf16_from_float(1.0f + 0x1p-8f), 0x3F80);
  EXPECT_EQ(num::bf16_from_float(1.0f + 0x1p-7f + 0x1p-8f), 0x3F82);
  // Subnormals are rounded, not flushed.
  EXPECT_EQ(num::bf16_from_float(0x1p-149f), 0x0000);
  EXPECT_EQ(num::bf16_from_float(0x1p-133f), 0x0001);
  EXPECT_EQ(num::bf16_from_float(0x1.8p-133f), 0x0002);  // tie between 1 and 2 -> even
  EXPECT_EQ(num::bf16_to_float(0x0001), 0x1p-133f);
  EXPECT_EQ(num::bf16_to_float(0x3F80), 1.0f);
}

}  // namespace
}  // namespace specstate::test
