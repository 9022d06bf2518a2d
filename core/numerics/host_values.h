// One token's values of one layer, computed on the host by the canonical step's own pieces
// (core/numerics/gdn_step.h): the deterministic inputs and parameters, and the values the step
// derives from them before the recurrence (conv outputs, q_hat and k_hat, the gates). The dump
// (sim/dump.h) and the Python module (python/) hand these to external references, so they are
// the step's bits, not a re-implementation of them.
#pragma once

#include <cstdint>
#include <vector>

#include "core/geometry.h"
#include "core/numerics/bf16.h"

namespace specstate::num {

// Parameters of model layer `layer_id`, as generated (bf16 bits).
struct LayerParameters {
  std::vector<bf16_bits> conv_weight;  // [conv_dim, W], oldest input's tap first
  std::vector<bf16_bits> a_log;        // [HV]
  std::vector<bf16_bits> dt_bias;      // [HV, A], A = decay_values_per_head()
};
LayerParameters layer_parameters(const ModelGeometry& g, uint64_t seed, uint32_t layer_id);

// Inputs of (request, position) in model layer `layer_id` (bf16 bits).
struct TokenInputs {
  std::vector<bf16_bits> x;  // [conv_dim] raw conv input, channels [q | k | v]
  std::vector<bf16_bits> a;  // [HV, A]
  std::vector<bf16_bits> b;  // [HV]
};
TokenInputs token_inputs(const ModelGeometry& g, uint64_t seed, uint64_t request, uint64_t position,
                         uint32_t layer_id);

// What the step derives from a token's inputs before the recurrence.
struct TokenDerived {
  std::vector<float> conv_out;  // [conv_dim] conv + SiLU, rounded to bf16 (stored as float)
  std::vector<float> q_hat;     // [H, K] normalised and scaled by K^-0.5
  std::vector<float> k_hat;     // [H, K] normalised
  std::vector<float> alpha;     // [HV, A] exp(g): one per value head, or per key channel
  std::vector<float> beta;      // [HV] sigmoid(b)
};
// `window` is the conv state before the token: [conv_dim, W-1] bf16 bits, oldest column first.
TokenDerived derive_token(const ModelGeometry& g, const LayerParameters& params,
                          const std::vector<bf16_bits>& window, const TokenInputs& inputs);

}  // namespace specstate::num
