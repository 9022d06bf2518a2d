// bf16 conversions of two fp32 values at once on the device, bit for bit those of
// core/numerics/bf16.h. Rounding goes through the conversion instruction (cvt.rn.bf16x2.f32:
// one instruction for two values instead of about seven integer operations each), which rounds
// to nearest even exactly as bf16_from_float's integer formula for every float that is not a
// NaN, subnormals and overflow to infinity included (count_bf16_pair_mismatches checks all
// 2^32 floats); a pair holding a NaN takes the integer formula, which makes it 0x7FC0.
#pragma once

#include <cuda_bf16.h>

#include "core/numerics/bf16.h"

namespace specstate::cuda {

// The integer formula for both halves; out of line, as NaN states are rare, so that its
// registers do not count in the kernels that store pairs.
__device__ __noinline__ inline uint32_t bf16_pair_by_formula(float lo, float hi) {
  return uint32_t(num::bf16_from_float(lo)) | uint32_t(num::bf16_from_float(hi)) << 16;
}

// bf16(lo) in bits 0..15, bf16(hi) in bits 16..31.
__device__ __forceinline__ uint32_t bf16_pair_bits(float lo, float hi) {
  if (__builtin_expect(isnan(lo) || isnan(hi), 0)) return bf16_pair_by_formula(lo, hi);
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// Both halves widened to fp32 (exact).
__device__ __forceinline__ float bf16_lo(uint32_t w) {
  return num::bits_float(w << 16);
}
__device__ __forceinline__ float bf16_hi(uint32_t w) {
  return num::bits_float(w & 0xFFFF0000u);
}

}  // namespace specstate::cuda
