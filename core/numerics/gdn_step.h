// The canonical per-token step of one Gated DeltaNet layer, version 2, as pieces that a backend
// composes, and of Kimi Delta Attention, which differs in its decay only (one per key channel).
// docs/numerics.md lists the operation sequence; this header is its only definition.
//
// Every reduction over K (the q/k norm sums, m = S^T k_hat, o = S^T q_hat) is kChains independent
// partial chains, chain c an ascending fma chain over the contiguous rows
// [c K/kChains, (c+1) K/kChains), combined by the fixed pairwise tree of combine_chains. The CPU
// backend runs head_column per SIMD group of 8 V columns (all chains in one call); a CUDA thread
// runs one chain of two columns with the row functions below, and the chains' partials are
// combined by an xor butterfly over the lanes that hold them, which is combine_chains' tree
// (backends/cuda/step_kernels.cu: the recurrence's 8 chains of a column pair, the prep kernel's
// norms).
#pragma once

#include "core/numerics/bf16.h"
#include "core/numerics/lanes.h"
#include "core/numerics/math.h"

namespace specstate::num {

inline constexpr float kNormEps = 0x1.0c6f7ap-20f;  // 1e-6
inline constexpr int kChains = 8;                   // partial chains per reduction over K
inline constexpr int kReplayRun = 16;               // stored tokens head_column_replay takes

// Depthwise causal conv of one channel: taps[t] * in[t] summed for t = 0..W-1 ascending with
// fma, in[] oldest first (in[W-1] is the new token), then SiLU, then rounded to bf16.
SPECSTATE_HD inline float conv_channel(const float* in, const float* taps, int width) {
  float acc = 0.0f;
  for (int t = 0; t < width; ++t)
    acc = ffma(taps[t], in[t], acc);
  return round_to_bf16(silu_f32(acc));
}

// ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)): level k adds the partials whose chain
// indices differ in bit k-1. fadd is commutative, so a lane that adds its partner's partial to
// its own gets the same bits as its partner: a butterfly over the chain index is this tree.
template <class L>
SPECSTATE_HD inline L combine_chains(const L (&x)[kChains]) {
  static_assert(kChains == 8, "the tree below is written for 8 chains");
  return fadd(fadd(fadd(x[0], x[1]), fadd(x[2], x[3])), fadd(fadd(x[4], x[5]), fadd(x[6], x[7])));
}

// One chain of a norm sum: sum of x_i^2 for i = 0..n-1 ascending, an fma chain from 0.
SPECSTATE_HD inline float sum_of_squares(const float* x, int n) {
  float acc = 0.0f;
  for (int i = 0; i < n; ++i)
    acc = ffma(x[i], x[i], acc);
  return acc;
}

// The norm denominator from the combined sum: sqrt(sum + eps).
SPECSTATE_HD inline float norm_from_sum(float sum) {
  return fsqrt(fadd(sum, kNormEps));
}

// sqrt(sum x_i^2 + eps) over n values (n a multiple of kChains), the sum as kChains chains.
SPECSTATE_HD inline float l2_norm_denominator(const float* x, int n) {
  const int len = n / kChains;
  float part[kChains];
  SPECSTATE_UNROLL
  for (int c = 0; c < kChains; ++c)
    part[c] = sum_of_squares(x + c * len, len);
  return norm_from_sum(combine_chains(part));
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

// The decay alpha = exp(g), g = -exp(A_log) * softplus(a + dt_bias): Gated DeltaNet's one value
// per value head, and Kimi Delta Attention's one per key channel (a and dt_bias per channel,
// A_log per head; Kimi Linear's gate, FLA's naive_kda_gate without a lower bound).
SPECSTATE_HD inline float gated_decay(float a, float a_log, float dt_bias) {
  const float g = -fmul(exp_f32(a_log), softplus_f32(fadd(a, dt_bias)));
  return exp_f32(g);
}

SPECSTATE_HD inline Gates gdn_gates(float a, float b, float a_log, float dt_bias) {
  return {gated_decay(a, a_log, dt_bias), sigmoid_f32(b)};
}

// The decay of state row i: one alpha for every row (Gated DeltaNet, S = alpha S) or alpha[i]
// (Kimi Delta Attention, S = Diag(alpha) S).
SPECSTATE_HD inline float decay_of_row(float alpha, int) {
  return alpha;
}
SPECSTATE_HD inline float decay_of_row(const float* alpha, int i) {
  return alpha[i];
}

// One row of a chain's first pass: s = alpha * s, then the chain's m = fma(s, k, m).
template <class L>
SPECSTATE_HD inline L decay_project_row(L& s, float k, float alpha, L m) {
  s = fmul(alpha, s);
  return ffma(s, k, m);
}

// One row of a chain's second pass: s = fma(k, delta, s), then the chain's o = fma(s, q, o).
template <class L>
SPECSTATE_HD inline L update_output_row(L& s, float k, float q, L delta, L o) {
  s = ffma(k, delta, s);
  return ffma(s, q, o);
}

// delta = beta * (v - m), m the combined first-pass chains.
template <class L>
SPECSTATE_HD inline L gdn_delta(L v, L m, float beta) {
  return fmul(beta, fsub(v, m));
}

// One row of a token replayed from stored values: the two state operations of the passes above,
// s = fma(k, delta, alpha * s), on the alpha, k_hat and delta that the token's verify computed.
// A replay starts from the state the verify started from (bit for bit: every strategy reaches
// the canonical state), so the verify's delta is the one the full step would compute again: the
// same operations on the same values, the same bits, without the reduction over K, its barrier,
// the conv, the norms or the gates. (The update pass's o is not kept: a replay outputs nothing.)
template <class L>
SPECSTATE_HD inline void replay_row(L& s, float k, float alpha, L delta) {
  s = ffma(k, delta, fmul(alpha, s));
}

// The whole step of one token for one group of columns whose state row i is s[i * stride],
// i = 0..K-1 (row i of every column of the group), with decay `alpha` (a float, or one per row:
// decay_of_row). Returns o before bf16 rounding, and delta in *delta_out when asked (a verify
// that keeps the token's values for a later replay).
// Chain c's m (first pass) and o (second pass) start at 0 and take its rows in ascending order.
// The chains advance together, row r of every chain before row r+1 of any: the order inside a
// chain is what fixes the bits, and kChains independent fma chains hide each other's latency.
template <class L, class Decay>
SPECSTATE_HD inline L delta_rule_column(L* s, int stride, int k_dim, const float* k_hat,
                                        const float* q_hat, L v, Decay alpha, float beta,
                                        L* delta_out = nullptr) {
  const int rows = k_dim / kChains;
  L part[kChains] = {};
  for (int r = 0; r < rows; ++r) {
    SPECSTATE_UNROLL
    for (int c = 0; c < kChains; ++c) {
      const int i = c * rows + r;
      part[c] = decay_project_row(s[i * stride], k_hat[i], decay_of_row(alpha, i), part[c]);
    }
  }
  const L delta = gdn_delta(v, combine_chains(part), beta);
  if (delta_out) *delta_out = delta;
  SPECSTATE_UNROLL
  for (int c = 0; c < kChains; ++c)
    part[c] = L{};
  for (int r = 0; r < rows; ++r) {
    SPECSTATE_UNROLL
    for (int c = 0; c < kChains; ++c) {
      const int i = c * rows + r;
      part[c] = update_output_row(s[i * stride], k_hat[i], q_hat[i], delta, part[c]);
    }
  }
  return combine_chains(part);
}

// `tokens` stored tokens replayed in order for one group of columns (rows as in
// delta_rule_column): token t's k_hat, decay and delta are k_hat[t], alpha[t] (a float, or one
// per row: decay_of_row) and delta[t]. Row by row, each row taken through every token before the
// next row: per element the operations and their order are those of one token at a time, so
// the bits are too, while the rows are read and written once instead of once per token. A row's
// chain over the tokens is serial, so one row of each of the kChains chains (rows as in
// delta_rule_column, K / kChains apart) advances at a time to hide its latency.
template <class L, class Decay>
SPECSTATE_HD inline void delta_rule_column_replay(L* s, int stride, int k_dim,
                                                  const float* const* k_hat, const Decay* alpha,
                                                  const L* delta, int tokens) {
  const int rows = k_dim / kChains;
  for (int r = 0; r < rows; ++r) {
    L x[kChains];
    SPECSTATE_UNROLL
    for (int c = 0; c < kChains; ++c)
      x[c] = s[(c * rows + r) * stride];
    for (int t = 0; t < tokens; ++t) {
      SPECSTATE_UNROLL
      for (int c = 0; c < kChains; ++c) {
        const int i = c * rows + r;
        replay_row(x[c], k_hat[t][i], decay_of_row(alpha[t], i), delta[t]);
      }
    }
    SPECSTATE_UNROLL
    for (int c = 0; c < kChains; ++c)
      s[(c * rows + r) * stride] = x[c];
  }
}

// Gated DeltaNet: one decay for the head.
template <class L>
SPECSTATE_HD inline L gdn_column(L* s, int stride, int k_dim, const float* k_hat,
                                 const float* q_hat, L v, Gates gates, L* delta_out = nullptr) {
  return delta_rule_column(s, stride, k_dim, k_hat, q_hat, v, gates.alpha, gates.beta, delta_out);
}

// A head's `decays` decay values (ModelGeometry::decay_values_per_head): 1 is one for every row
// (kept in a register), K one per row.
template <class L>
SPECSTATE_HD inline L head_column(L* s, int stride, int k_dim, const float* k_hat,
                                  const float* q_hat, L v, const float* alpha, int decays,
                                  float beta, L* delta_out = nullptr) {
  if (decays == 1)
    return delta_rule_column(s, stride, k_dim, k_hat, q_hat, v, alpha[0], beta, delta_out);
  return delta_rule_column(s, stride, k_dim, k_hat, q_hat, v, alpha, beta, delta_out);
}
// Stored tokens for one group of columns, token t's `decays` decay values at alpha[t] (1: one
// for every row). At most kReplayRun of them.
template <class L>
SPECSTATE_HD inline void head_column_replay(L* s, int stride, int k_dim, const float* const* k_hat,
                                            const float* const* alpha, int decays, const L* delta,
                                            int tokens) {
  if (decays != 1) return delta_rule_column_replay(s, stride, k_dim, k_hat, alpha, delta, tokens);
  float head_alpha[kReplayRun];
  for (int t = 0; t < tokens; ++t)
    head_alpha[t] = alpha[t][0];
  delta_rule_column_replay(s, stride, k_dim, k_hat, head_alpha, delta, tokens);
}

}  // namespace specstate::num
