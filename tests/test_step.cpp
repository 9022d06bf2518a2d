// The canonical conv, GDN and KDA steps against a plain float64 implementation written here.
//
// Tolerance (written once, with its reason): the float32 step rounds every operation, and each
// reduction over K = 128 is 8 fma chains of 16 combined by a tree of 7 additions, so the error
// grows like (K/8 + 3) * 2^-24 in the worst case and like its square root typically. Over 8 tokens
// the state error relative to the largest state magnitude, and the output error relative to the
// largest output, must stay below kRelBound = 2^-14 (about 60 float ulps; measured values are
// printed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "backends/cpu/packet_lanes.h"
#include "core/geometry.h"
#include "core/numerics/gdn_step.h"
#include "core/numerics/inputs.h"
#include "tests/ulp.h"

namespace specstate::test {
namespace {

constexpr double kRelBound = 0x1p-14;

double softplus64(double x) {
  return x > 20.0 ? x : std::log1p(std::exp(x));
}

TEST(Step, ConvChannelMatchesFloat64ToOneBf16Ulp) {
  const uint64_t seed = 7;
  int worst = 0;
  for (uint32_t c = 0; c < 4096; ++c) {
    float taps[4], in[4];
    double exact = 0;
    for (int t = 0; t < 4; ++t) {
      taps[t] = num::bf16_to_float(num::gen_conv_weight(seed, 0, c, t));
      in[t] = num::bf16_to_float(num::gen_conv_input({seed, 1, uint64_t(t), 0}, c));
      exact += double(taps[t]) * double(in[t]);
    }
    exact = exact / (1.0 + std::exp(-exact));
    const float got = num::conv_channel(in, taps, 4);
    // got is a bf16 value; it must be a bf16 neighbour of the exact result.
    const int d = std::abs(int(num::bf16_from_float(got) & 0x7FFF) -
                           int(num::bf16_from_float(float(exact)) & 0x7FFF));
    worst = std::max(worst, d);
  }
  std::printf("conv: worst distance from the exact result rounded to bf16: %d bf16 ulp\n", worst);
  EXPECT_LE(worst, 1);
}

struct HeadInputs {
  std::vector<float> q, k, v;  // [K], [K], [V]: bf16 conv outputs
  float b;
};

// Conv outputs look like SiLU of conv sums: the generator's inputs through SiLU, rounded to bf16.
HeadInputs head_inputs(const num::TokenCoord& coord, int K, int V, uint32_t head) {
  auto conv_out = [&](uint32_t channel) {
    return num::round_to_bf16(
        num::silu_f32(num::bf16_to_float(num::gen_conv_input(coord, channel))));
  };
  HeadInputs in;
  for (int i = 0; i < K; ++i) {
    in.q.push_back(conv_out(uint32_t(i)));
    in.k.push_back(conv_out(uint32_t(K + i)));
  }
  for (int j = 0; j < V; ++j)
    in.v.push_back(conv_out(uint32_t(2 * K + j)));
  in.b = num::bf16_to_float(num::gen_gate_b(coord, head));
  return in;
}

// The decay of each of a head's K state rows for one token, in float32 (the canonical gates) and
// in float64: the same value for every row (Gated DeltaNet) or one per row (Kimi Delta Attention).
struct Decays {
  std::vector<float> alpha;
  std::vector<double> alpha64;
};
using DecayOf = Decays (*)(const num::TokenCoord& coord, int K, uint64_t seed);

double gated_decay64(double a, double a_log, double dt_bias) {
  return std::exp(-std::exp(a_log) * softplus64(a + dt_bias));
}

constexpr uint32_t kHead = 3;

Decays gdn_decay(const num::TokenCoord& coord, int K, uint64_t seed) {
  const float a = num::bf16_to_float(num::gen_gate_a(coord, kHead));
  const float a_log = num::bf16_to_float(num::gen_a_log(seed, 0, kHead));
  const float dt_bias = num::bf16_to_float(num::gen_dt_bias(seed, 0, kHead));
  const float alpha = num::gdn_gates(a, 0.0f, a_log, dt_bias).alpha;
  return {std::vector<float>(size_t(K), alpha),
          std::vector<double>(size_t(K), gated_decay64(a, a_log, dt_bias))};
}

// Kimi Linear's gate: a gate input and dt_bias per key channel, A_log per head (the generator's
// value-head streams, indexed by head * K + channel).
Decays kda_decay(const num::TokenCoord& coord, int K, uint64_t seed) {
  const float a_log = num::bf16_to_float(num::gen_a_log(seed, 0, kHead));
  Decays d;
  for (int i = 0; i < K; ++i) {
    const uint32_t channel = kHead * uint32_t(K) + uint32_t(i);
    const float a = num::bf16_to_float(num::gen_gate_a(coord, channel));
    const float dt_bias = num::bf16_to_float(num::gen_dt_bias(seed, 0, channel));
    d.alpha.push_back(num::gated_decay(a, a_log, dt_bias));
    d.alpha64.push_back(gated_decay64(a, a_log, dt_bias));
  }
  return d;
}

// Worst relative errors (state, output) of the canonical float32 head step against float64 over
// `tokens` tokens of one head of K = V = 128.
std::pair<double, double> head_errors_against_float64(DecayOf decay_of, int tokens) {
  const int K = 128, V = 128;
  const uint64_t seed = 11;
  const float scale = make_geometry("qwen3-next-80b-a3b").query_scale();
  EXPECT_EQ(scale, 0x1.6a09e6p-4f);
  std::vector<float> S(K * V, 0.0f);
  std::vector<double> S64(K * V, 0.0);
  double worst_state = 0, worst_out = 0;
  for (int t = 0; t < tokens; ++t) {
    const num::TokenCoord coord{seed, 5, uint64_t(t), 0};
    const HeadInputs in = head_inputs(coord, K, V, kHead);
    const Decays decay = decay_of(coord, K, seed);

    // float32, the canonical sequence.
    const float dq = num::l2_norm_denominator(in.q.data(), K);
    const float dk = num::l2_norm_denominator(in.k.data(), K);
    std::vector<float> qh(K), kh(K), o(V);
    for (int i = 0; i < K; ++i) {
      qh[i] = num::normalize_query(in.q[i], dq, scale);
      kh[i] = num::normalize_key(in.k[i], dk);
    }
    const float beta = num::sigmoid_f32(in.b);
    for (int j = 0; j < V; ++j) {
      o[j] = num::delta_rule_column(S.data() + j, V, K, kh.data(), qh.data(), in.v[j],
                                    decay.alpha.data(), beta);
    }

    // float64.
    double sq = 0, sk = 0;
    for (int i = 0; i < K; ++i) {
      sq += double(in.q[i]) * in.q[i];
      sk += double(in.k[i]) * in.k[i];
    }
    std::vector<double> qh64(K), kh64(K);
    for (int i = 0; i < K; ++i) {
      qh64[i] = in.q[i] / std::sqrt(sq + 1e-6) / std::sqrt(double(K));
      kh64[i] = in.k[i] / std::sqrt(sk + 1e-6);
    }
    const double beta64 = 1.0 / (1.0 + std::exp(-double(in.b)));
    double max_s = 0, max_o = 0, err_s = 0, err_o = 0;
    for (int j = 0; j < V; ++j) {
      double m = 0;
      for (int i = 0; i < K; ++i) {
        S64[i * V + j] *= decay.alpha64[size_t(i)];
        m += S64[i * V + j] * kh64[i];
      }
      const double delta = beta64 * (in.v[j] - m);
      double o64 = 0;
      for (int i = 0; i < K; ++i) {
        S64[i * V + j] += kh64[i] * delta;
        o64 += S64[i * V + j] * qh64[i];
      }
      max_o = std::max(max_o, std::fabs(o64));
      err_o = std::max(err_o, std::fabs(o64 - o[j]));
    }
    for (int e = 0; e < K * V; ++e) {
      max_s = std::max(max_s, std::fabs(S64[e]));
      err_s = std::max(err_s, std::fabs(S64[e] - S[e]));
    }
    worst_state = std::max(worst_state, err_s / max_s);
    worst_out = std::max(worst_out, err_o / max_o);
  }
  return {worst_state, worst_out};
}

TEST(Step, GdnHeadMatchesFloat64Recurrence) {
  const int tokens = 8;
  const auto [state, out] = head_errors_against_float64(gdn_decay, tokens);
  std::printf(
      "gdn: worst relative error over %d tokens: state %.3g (%.1f ulp of the max), output %.3g\n",
      tokens, state, state / 0x1p-24, out);
  EXPECT_LT(state, kRelBound);
  EXPECT_LT(out, kRelBound);
}

// Kimi Delta Attention's step (docs/numerics.md): the same step with the decay per state row.
// Its accuracy is no worse than GDN's: the same bound.
TEST(Step, KdaHeadMatchesFloat64Recurrence) {
  const int tokens = 8;
  const auto [state, out] = head_errors_against_float64(kda_decay, tokens);
  std::printf(
      "kda: worst relative error over %d tokens: state %.3g (%.1f ulp of the max), output %.3g\n",
      tokens, state, state / 0x1p-24, out);
  EXPECT_LT(state, kRelBound);
  EXPECT_LT(out, kRelBound);
}

// A decay of one value for every row, as a float or as K equal values, gives the same bits: GDN
// is KDA with equal decays, and delta_rule_column has one definition for both.
TEST(Step, EqualRowDecaysAreTheHeadDecayBitForBit) {
  const int K = 128, V = 8;
  std::vector<float> a(K * V), b(K * V), kh(K), qh(K);
  for (int i = 0; i < K; ++i) {
    const num::TokenCoord coord{17, 1, uint64_t(i), 0};
    kh[i] = num::bf16_to_float(num::gen_conv_input(coord, 0)) * 0.125f;
    qh[i] = num::bf16_to_float(num::gen_conv_input(coord, 1)) * 0.125f;
    for (int j = 0; j < V; ++j)
      a[i * V + j] = b[i * V + j] = num::bf16_to_float(num::gen_conv_input(coord, 2 + j));
  }
  const std::vector<float> rows(K, 0.8125f);
  for (int j = 0; j < V; ++j) {
    const float v = num::bf16_to_float(num::gen_gate_b({17, 2, uint64_t(j), 0}, 0));
    float da = 0, db = 0;
    const float oa =
        num::delta_rule_column(a.data() + j, V, K, kh.data(), qh.data(), v, 0.8125f, 0.25f, &da);
    const float ob = num::delta_rule_column(b.data() + j, V, K, kh.data(), qh.data(), v,
                                            rows.data(), 0.25f, &db);
    EXPECT_EQ(num::float_bits(oa), num::float_bits(ob));
    EXPECT_EQ(num::float_bits(da), num::float_bits(db));
  }
  for (int e = 0; e < K * V; ++e)
    ASSERT_EQ(num::float_bits(a[e]), num::float_bits(b[e])) << e;
}

// Lane l of gdn_column over a group of 8 lanes is gdn_column over column l alone, bit for bit:
// the generic Lanes<8> (the device's type) and the CPU backend's Eigen packets (PacketLanes)
// compute the scalar definition.
template <class L>
void expect_lanes_equal_single_columns() {
  constexpr int K = 128, N = 8;
  std::vector<float> kh(K), qh(K);
  std::vector<L> group(K);
  std::vector<std::vector<float>> single(N, std::vector<float>(K));
  L v;
  for (int i = 0; i < K; ++i) {
    const num::TokenCoord coord{13, 2, uint64_t(i), 0};
    kh[i] = num::bf16_to_float(num::gen_conv_input(coord, 0)) * 0.125f;
    qh[i] = num::bf16_to_float(num::gen_conv_input(coord, 1)) * 0.125f;
    for (int l = 0; l < N; ++l) {
      group[i].v[l] = num::bf16_to_float(num::gen_conv_input(coord, 2 + l));
      single[l][i] = group[i].v[l];
    }
  }
  for (int l = 0; l < N; ++l)
    v.v[l] = num::bf16_to_float(num::gen_gate_a({13, 3, uint64_t(l), 0}, 0));
  const num::Gates gates{0.75f, 0.5f};
  for (int t = 0; t < 3; ++t) {
    const L o = num::gdn_column(group.data(), 1, K, kh.data(), qh.data(), v, gates);
    for (int l = 0; l < N; ++l) {
      const float ol = num::gdn_column(single[l].data(), 1, K, kh.data(), qh.data(), v.v[l], gates);
      ASSERT_EQ(num::float_bits(o.v[l]), num::float_bits(ol)) << "token " << t << " lane " << l;
      for (int i = 0; i < K; ++i)
        ASSERT_EQ(num::float_bits(group[i].v[l]), num::float_bits(single[l][i]));
    }
  }
}

TEST(Step, LaneGroupsEqualSingleColumns) {
  expect_lanes_equal_single_columns<num::Lanes<8>>();
}

TEST(Step, PacketLaneGroupsEqualSingleColumns) {
  expect_lanes_equal_single_columns<cpu::PacketLanes>();
}

// head_column_replay takes a run of stored tokens row by row (each row through every token before
// the next row); the definition is one token at a time, each a pass of replay_row over the rows.
// The same bits for every run length, with one decay per head (GDN) and one per row (KDA).
TEST(Step, StoredTokensReplayedTogetherEqualOneAtATime) {
  using L = cpu::PacketLanes;
  constexpr int K = 128, R = num::kReplayRun;
  for (const int decays : {1, K}) {
    std::vector<std::vector<float>> k_hat(R, std::vector<float>(K)), alpha(R);
    std::vector<L> delta(R);
    for (int t = 0; t < R; ++t) {
      for (int i = 0; i < K; ++i)
        k_hat[t][i] = num::bf16_to_float(num::gen_conv_input({29, 1, uint64_t(t), 0}, i)) * 0.125f;
      for (int i = 0; i < decays; ++i)
        alpha[t].push_back(0.5f + 0.03125f * float((t * 7 + i) % 16));
      for (int l = 0; l < L::kLanes; ++l)
        delta[t].v[l] = num::bf16_to_float(num::gen_gate_a({29, 2, uint64_t(t), 0}, l));
    }
    std::vector<const float*> k_ptr, a_ptr;
    for (int t = 0; t < R; ++t) {
      k_ptr.push_back(k_hat[t].data());
      a_ptr.push_back(alpha[t].data());
    }
    for (int n = 1; n <= R; ++n) {
      std::vector<L> together(K), one_at_a_time(K);
      for (int i = 0; i < K; ++i) {
        for (int l = 0; l < L::kLanes; ++l)
          together[i].v[l] = one_at_a_time[i].v[l] =
              num::bf16_to_float(num::gen_conv_input({29, 3, uint64_t(i), 0}, l));
      }
      num::head_column_replay(together.data(), 1, K, k_ptr.data(), a_ptr.data(), decays,
                              delta.data(), n);
      for (int t = 0; t < n; ++t) {
        for (int i = 0; i < K; ++i)
          num::replay_row(one_at_a_time[i], k_hat[t][i], alpha[t][decays == 1 ? 0 : i], delta[t]);
      }
      for (int i = 0; i < K; ++i) {
        for (int l = 0; l < L::kLanes; ++l) {
          ASSERT_EQ(num::float_bits(together[i].v[l]), num::float_bits(one_at_a_time[i].v[l]))
              << "decays " << decays << ", " << n << " tokens, row " << i << ", lane " << l;
        }
      }
    }
  }
}

// combine_chains is the balanced tree over adjacent chains, not any other association.
TEST(Step, ChainsCombineByTheDocumentedTree) {
  const float x[num::kChains] = {1.0f, 0x1p-24f, 0x1p-24f, 0x1p-24f, -1.0f, 0x1p-24f, 0.0f, 0.0f};
  // ((1 + 2^-24) + (2^-24 + 2^-24)) + ((-1 + 2^-24) + (0 + 0)): 1 + 2^-24 rounds to 1 (ties to
  // even), then 1 + 2^-23 and -1 + 2^-24 are exact, and their sum is 1.5 * 2^-23. Adding the
  // chains one after another gives 2^-24 instead.
  EXPECT_EQ(num::combine_chains(x), 0x1.8p-23f);
  float ascending = 0.0f;
  for (float e : x)
    ascending = ascending + e;
  EXPECT_NE(ascending, num::combine_chains(x));  // a sequential sum differs here
}

// The conv outputs of the generator's input ranges stay finite and non-trivial.
TEST(Step, GatesInRealisticRange) {
  float min_alpha = 1, max_alpha = 0;
  for (uint32_t h = 0; h < 64; ++h) {
    for (uint64_t pos = 0; pos < 64; ++pos) {
      const num::TokenCoord coord{3, 1, pos, 0};
      const num::Gates g = num::gdn_gates(num::bf16_to_float(num::gen_gate_a(coord, h)),
                                          num::bf16_to_float(num::gen_gate_b(coord, h)),
                                          num::bf16_to_float(num::gen_a_log(3, 0, h)),
                                          num::bf16_to_float(num::gen_dt_bias(3, 0, h)));
      EXPECT_GT(g.beta, 0.0f);
      EXPECT_LT(g.beta, 1.0f);
      min_alpha = std::min(min_alpha, g.alpha);
      max_alpha = std::max(max_alpha, g.alpha);
    }
  }
  EXPECT_GT(max_alpha, 0.9f);
  EXPECT_LT(min_alpha, 0.5f);
}

}  // namespace
}  // namespace specstate::test
