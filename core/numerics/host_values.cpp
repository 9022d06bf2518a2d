#include "core/numerics/host_values.h"

#include "core/errors.h"
#include "core/numerics/gdn_step.h"
#include "core/numerics/inputs.h"

namespace specstate::num {

LayerParameters layer_parameters(const ModelGeometry& g, uint64_t seed, uint32_t layer_id) {
  LayerParameters p;
  const int C = g.conv_dim(), W = g.conv_width, HV = g.num_v_heads;
  const int A = g.decay_values_per_head();
  const RankIndex model = g.rank_index();
  p.conv_weight.resize(size_t(C) * W);
  for (int c = 0; c < C; ++c) {
    for (int t = 0; t < W; ++t)
      p.conv_weight[size_t(c) * W + t] = gen_conv_weight(seed, layer_id, model.conv_channel(c), t);
  }
  for (int h = 0; h < HV; ++h)
    p.a_log.push_back(gen_a_log(seed, layer_id, model.value_head(h)));
  for (int e = 0; e < HV * A; ++e)
    p.dt_bias.push_back(gen_dt_bias(seed, layer_id, model.head_entry(e, A)));
  return p;
}

TokenInputs token_inputs(const ModelGeometry& g, uint64_t seed, uint64_t request, uint64_t position,
                         uint32_t layer_id) {
  const TokenCoord coord{seed, request, position, layer_id};
  const int A = g.decay_values_per_head();
  const RankIndex model = g.rank_index();
  TokenInputs t;
  t.x.resize(g.conv_dim());
  const uint64_t prefix = conv_input_prefix(coord);
  for (int c = 0; c < g.conv_dim(); ++c)
    t.x[c] = conv_input_at(prefix, model.conv_channel(c));
  for (int e = 0; e < g.num_v_heads * A; ++e)
    t.a.push_back(gen_gate_a(coord, model.head_entry(e, A)));
  for (int h = 0; h < g.num_v_heads; ++h)
    t.b.push_back(gen_gate_b(coord, model.value_head(h)));
  return t;
}

TokenDerived derive_token(const ModelGeometry& g, const LayerParameters& params,
                          const std::vector<bf16_bits>& window, const TokenInputs& inputs) {
  const int C = g.conv_dim(), W = g.conv_width, wc = g.conv_state_cols();
  const int H = g.num_k_heads, HV = g.num_v_heads, K = g.head_k_dim;
  SPECSTATE_ASSERT(window.size() == size_t(C) * wc && inputs.x.size() == size_t(C),
                   "a conv window [conv_dim, W-1] and one token's inputs");
  TokenDerived d;
  d.conv_out.resize(C);
  std::vector<float> in(W), taps(W);
  for (int c = 0; c < C; ++c) {
    for (int t = 0; t < wc; ++t)
      in[t] = bf16_to_float(window[size_t(c) * wc + t]);
    in[wc] = bf16_to_float(inputs.x[c]);
    for (int t = 0; t < W; ++t)
      taps[t] = bf16_to_float(params.conv_weight[size_t(c) * W + t]);
    d.conv_out[c] = conv_channel(in.data(), taps.data(), W);
  }
  d.q_hat.resize(size_t(H) * K);
  d.k_hat.resize(size_t(H) * K);
  const float scale = g.query_scale();
  for (int h = 0; h < H; ++h) {
    const float* q = d.conv_out.data() + size_t(h) * K;
    const float* k = d.conv_out.data() + g.key_dim() + size_t(h) * K;
    const float dq = l2_norm_denominator(q, K), dk = l2_norm_denominator(k, K);
    for (int i = 0; i < K; ++i) {
      d.q_hat[size_t(h) * K + i] = normalize_query(q[i], dq, scale);
      d.k_hat[size_t(h) * K + i] = normalize_key(k[i], dk);
    }
  }
  const int A = g.decay_values_per_head();
  for (int h = 0; h < HV; ++h) {
    for (int i = 0; i < A; ++i) {
      const size_t e = size_t(h) * A + i;
      d.alpha.push_back(gated_decay(bf16_to_float(inputs.a[e]), bf16_to_float(params.a_log[h]),
                                    bf16_to_float(params.dt_bias[e])));
    }
    d.beta.push_back(sigmoid_f32(bf16_to_float(inputs.b[h])));
  }
  return d;
}

}  // namespace specstate::num
