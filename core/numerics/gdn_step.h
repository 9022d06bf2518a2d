// The canonical per-token step of one Gated DeltaNet layer (design section 5), as scalar pieces
// that a backend composes. The operation sequence is documented in docs/numerics.md; the CPU
// backend vectorises the column step across V and the CUDA backend gives each thread a column,
// both executing exactly the sequence written here.
#pragma once

#include "core/numerics/bf16.h"
#include "core/numerics/math.h"

namespace specstate::num {

inline constexpr float kNormEps = 0x1.0c6f7ap-20f;  // 1e-6

// Depthwise causal conv of one channel: taps[t] * in[t] summed for t = 0..W-1 ascending with
// fma, in[] oldest first (in[W-1] is the new token), then SiLU, then rounded to bf16.
SPECSTATE_HD inline float conv_channel(const float* in, const float* taps, int width) {
  float acc = 0.0f;
  for (int t = 0; t < width; ++t)
    acc = ffma(taps[t], in[t], acc);
  return round_to_bf16(silu_f32(acc));
}

// sqrt(sum x_i^2 + eps) with the sum as an ascending fma chain over i.
SPECSTATE_HD inline float l2_norm_denominator(const float* x, int n) {
  float acc = 0.0f;
  for (int i = 0; i < n; ++i)
    acc = ffma(x[i], x[i], acc);
  return fsqrt(fadd(acc, kNormEps));
}

// k_hat = k / denominator; q_hat = (q / denominator) * scale with scale = K^-0.5.
SPECSTATE_HD inline float normalize_key(float k, float denominator) {
  return fdiv(k, denominator);
}
SPECSTATE_HD inline float normalize_query(float q, float denominator, float scale) {
  return fmul(fdiv(q, denominator), scale);
}

struct Gates {
  float alpha;  // exp(g), g = -exp(A_log) * softplus(a + dt_bias)
  float beta;   // sigmoid(b)
};

SPECSTATE_HD inline Gates gdn_gates(float a, float b, float a_log, float dt_bias) {
  const float g = -fmul(exp_f32(a_log), softplus_f32(fadd(a, dt_bias)));
  return {exp_f32(g), sigmoid_f32(b)};
}

// One V column of one value head over one token; s[i * stride], i = 0..K-1, is the fp32
// working state. Returns o_j (before bf16 rounding).
//   decay:  s_i = alpha * s_i                  m = sum_i s_i * k_i  (ascending fma)
//   delta:  d = beta * (v - m)
//   update: s_i = fma(k_i, d, s_i)             o = sum_i s_i * q_i  (ascending fma)
SPECSTATE_HD inline float gdn_column(float* s, int stride, int k_dim, const float* k_hat,
                                     const float* q_hat, float v, Gates gates) {
  float m = 0.0f;
  for (int i = 0; i < k_dim; ++i) {
    const float decayed = fmul(gates.alpha, s[i * stride]);
    s[i * stride] = decayed;
    m = ffma(decayed, k_hat[i], m);
  }
  const float delta = fmul(gates.beta, fsub(v, m));
  float o = 0.0f;
  for (int i = 0; i < k_dim; ++i) {
    const float updated = ffma(k_hat[i], delta, s[i * stride]);
    s[i * stride] = updated;
    o = ffma(updated, q_hat[i], o);
  }
  return o;
}

}  // namespace specstate::num
