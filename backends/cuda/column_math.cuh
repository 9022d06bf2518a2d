// Per-thread pieces of the canonical step (core/numerics/gdn_step.h) for kernels that keep one
// state column per thread in registers. V = K, so the K addresses of a column are one base plus
// compile-time offsets and the state array is indexed by constants only (never local memory).
#pragma once

#include "core/numerics/gdn_step.h"

namespace specstate::cuda {

// Column `col` of a [K, K] head stored in the pool dtype, widened to fp32 (exact for bf16).
template <int K, bool kBf16>
__device__ __forceinline__ void load_column(const void* head, int col, float (&s)[K]) {
  if constexpr (kBf16) {
    const uint16_t* src = static_cast<const uint16_t*>(head) + col;
#pragma unroll
    for (int i = 0; i < K; ++i)
      s[i] = num::bf16_to_float(src[i * K]);
  } else {
    const float* src = static_cast<const float*>(head) + col;
#pragma unroll
    for (int i = 0; i < K; ++i)
      s[i] = src[i * K];
  }
}

// Stores column `col` in the pool dtype (bf16: round to nearest even).
template <int K, bool kBf16>
__device__ __forceinline__ void store_column(void* head, int col, const float (&s)[K]) {
  if constexpr (kBf16) {
    uint16_t* dst = static_cast<uint16_t*>(head) + col;
#pragma unroll
    for (int i = 0; i < K; ++i)
      dst[i * K] = num::bf16_from_float(s[i]);
  } else {
    float* dst = static_cast<float*>(head) + col;
#pragma unroll
    for (int i = 0; i < K; ++i)
      dst[i * K] = s[i];
  }
}

// l2_norm_denominator's sequence (ascending fma chain, + eps, sqrt) over 16-byte shared loads,
// unrolled by 4 so that loads run ahead of the chain. x must be 16-byte aligned.
template <int K>
__device__ __forceinline__ float norm_denominator(const float* x) {
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float acc = 0.0f;
#pragma unroll 4
  for (int i = 0; i < K / 4; ++i) {
    const float4 v = x4[i];
    acc = num::ffma(v.x, v.x, acc);
    acc = num::ffma(v.y, v.y, acc);
    acc = num::ffma(v.z, v.z, acc);
    acc = num::ffma(v.w, v.w, acc);
  }
  return num::fsqrt(num::fadd(acc, num::kNormEps));
}

// gdn_column's sequence for one column whose K state values are in registers; returns o before
// rounding. q_hat and k_hat are 16-byte aligned vectors in shared memory, read in groups of 16.
// The second pass reads k_hat from a second copy (`k_hat_again`, same values): reading the same
// address twice lets ptxas keep all K values of the first pass live for the second, K registers
// the state does not leave (it spilled the state). The empty asm between groups keeps the
// front end from hoisting loads across groups for the same reason.
template <int K>
__device__ __forceinline__ float column_step(float (&s)[K], const float* q_hat, const float* k_hat,
                                             const float* k_hat_again, float v, float alpha,
                                             float beta) {
  constexpr int kGroup = K < 16 ? K : 16;
  const float4* q4 = reinterpret_cast<const float4*>(q_hat);
  const float4* k4 = reinterpret_cast<const float4*>(k_hat);
  const float4* k4_again = reinterpret_cast<const float4*>(k_hat_again);
  float m = 0.0f;
#pragma unroll
  for (int g = 0; g < K; g += kGroup) {
    float k[kGroup];
#pragma unroll
    for (int u = 0; u < kGroup; u += 4)
      *reinterpret_cast<float4*>(k + u) = k4[(g + u) / 4];
#pragma unroll
    for (int u = 0; u < kGroup; ++u) {
      s[g + u] = num::fmul(alpha, s[g + u]);
      m = num::ffma(s[g + u], k[u], m);
    }
    asm volatile("" ::: "memory");
  }
  const float delta = num::fmul(beta, num::fsub(v, m));
  float o = 0.0f;
#pragma unroll
  for (int g = 0; g < K; g += kGroup) {
    float k[kGroup], q[kGroup];
#pragma unroll
    for (int u = 0; u < kGroup; u += 4) {
      *reinterpret_cast<float4*>(k + u) = k4_again[(g + u) / 4];
      *reinterpret_cast<float4*>(q + u) = q4[(g + u) / 4];
    }
#pragma unroll
    for (int u = 0; u < kGroup; ++u) {
      s[g + u] = num::ffma(k[u], delta, s[g + u]);
      o = num::ffma(s[g + u], q[u], o);
    }
    asm volatile("" ::: "memory");
  }
  return o;
}

}  // namespace specstate::cuda
