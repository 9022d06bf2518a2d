// bfloat16 as raw bits (uint16_t): the storage type of conv windows, token inputs, outputs and
// bf16 SSM pools. Conversions are integer-only so every compiler and device agrees.
#pragma once

#include "core/numerics/hd.h"

namespace specstate::num {

using bf16_bits = uint16_t;

inline constexpr bf16_bits kBf16CanonicalNan = 0x7FC0;

// Round-to-nearest-even: (u + 0x7FFF + ((u >> 16) & 1)) >> 16. Infinities stay infinite, finite
// values that round past the largest bf16 become infinity, subnormals round like any other
// value (no flush), and every NaN becomes the canonical quiet NaN 0x7FC0.
SPECSTATE_HD inline bf16_bits bf16_from_float(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return kBf16CanonicalNan;
  return static_cast<bf16_bits>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// Exact: every bf16 value is a float.
SPECSTATE_HD inline float bf16_to_float(bf16_bits b) {
  return bits_float(static_cast<uint32_t>(b) << 16);
}

// The value a float takes after a round trip through bf16 storage.
SPECSTATE_HD inline float round_to_bf16(float f) {
  return bf16_to_float(bf16_from_float(f));
}

}  // namespace specstate::num
