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

// gdn_column's sequence for one column whose K state values are in registers, split into its
// two passes so that a kernel can overlap token t's second pass with token t+1's first (their
// chains are independent). q_hat and k_hat are 16-byte aligned vectors in shared memory, read in
// groups. The second pass reads k_hat from a second copy (same values): reading one address
// twice lets ptxas keep all K values of the first pass live for the second, K registers the
// state does not leave. The empty asm between groups keeps the front end from hoisting loads
// across groups for the same reason.
template <int K>
inline constexpr int kGroup = K < 8 ? K : 8;

template <int K>
__device__ __forceinline__ void load_group(const float* src, int g, float (&dst)[kGroup<K>]) {
#pragma unroll
  for (int u = 0; u < kGroup<K>; u += 4) {
    *reinterpret_cast<float4*>(dst + u) = reinterpret_cast<const float4*>(src + g)[u / 4];
  }
}

// First pass: s_i = alpha * s_i; returns m = sum_i s_i * k_i (ascending fma).
template <int K>
__device__ __forceinline__ float decay_and_project(float (&s)[K], const float* k_hat, float alpha) {
  float m = 0.0f;
#pragma unroll
  for (int g = 0; g < K; g += kGroup<K>) {
    float k[kGroup<K>];
    load_group<K>(k_hat, g, k);
#pragma unroll
    for (int u = 0; u < kGroup<K>; ++u) {
      s[g + u] = num::fmul(alpha, s[g + u]);
      m = num::ffma(s[g + u], k[u], m);
    }
    asm volatile("" ::: "memory");
  }
  return m;
}

// Second pass: s_i = fma(k_i, delta, s_i); returns o = sum_i s_i * q_i (ascending fma).
template <int K>
__device__ __forceinline__ float update_and_output(float (&s)[K], const float* k_hat_again,
                                                   const float* q_hat, float delta) {
  float o = 0.0f;
#pragma unroll
  for (int g = 0; g < K; g += kGroup<K>) {
    float k[kGroup<K>], q[kGroup<K>];
    load_group<K>(k_hat_again, g, k);
    load_group<K>(q_hat, g, q);
#pragma unroll
    for (int u = 0; u < kGroup<K>; ++u) {
      s[g + u] = num::ffma(k[u], delta, s[g + u]);
      o = num::ffma(s[g + u], q[u], o);
    }
    asm volatile("" ::: "memory");
  }
  return o;
}

// Token t's second pass and token t+1's first pass in one sweep over i: per element, exactly the
// operations of update_and_output(t) then decay_and_project(t+1), so every chain sees the same
// operands in the same order; only independent chains are interleaved. With kStore, the state
// after token t (before t+1's decay) is stored to `head` (a [K, K] head in the pool dtype).
// Returns o_t; m_next receives token t+1's m.
template <int K, bool kBf16, bool kStore>
__device__ __forceinline__ float update_output_then_project(float (&s)[K], const float* k_hat_again,
                                                            const float* q_hat, float delta,
                                                            const float* k_hat_next,
                                                            float alpha_next, void* head, int col,
                                                            float& m_next) {
  float o = 0.0f, m = 0.0f;
#pragma unroll
  for (int g = 0; g < K; g += kGroup<K>) {
    float k[kGroup<K>], q[kGroup<K>], kn[kGroup<K>];
    load_group<K>(k_hat_again, g, k);
    load_group<K>(q_hat, g, q);
    load_group<K>(k_hat_next, g, kn);
#pragma unroll
    for (int u = 0; u < kGroup<K>; ++u) {
      const float updated = num::ffma(k[u], delta, s[g + u]);
      o = num::ffma(updated, q[u], o);
      if constexpr (kStore) {
        if constexpr (kBf16) {
          static_cast<uint16_t*>(head)[(g + u) * K + col] = num::bf16_from_float(updated);
        } else {
          static_cast<float*>(head)[(g + u) * K + col] = updated;
        }
      }
      s[g + u] = num::fmul(alpha_next, updated);
      m = num::ffma(s[g + u], kn[u], m);
    }
    asm volatile("" ::: "memory");
  }
  m_next = m;
  return o;
}

// The whole column step (both passes) for one token; returns o before rounding.
template <int K>
__device__ __forceinline__ float column_step(float (&s)[K], const float* q_hat, const float* k_hat,
                                             const float* k_hat_again, float v, float alpha,
                                             float beta) {
  const float m = decay_and_project<K>(s, k_hat, alpha);
  const float delta = num::fmul(beta, num::fsub(v, m));
  return update_and_output<K>(s, k_hat_again, q_hat, delta);
}

}  // namespace specstate::cuda
