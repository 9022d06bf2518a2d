// Deterministic token inputs and model parameters. Every value is a pure
// function of (seed, stream, coordinates): an integer counter-based hash (SplitMix64's
// finaliser, chained over the coordinates) gives 24 random bits, which are scaled into a
// realistic range with exact float operations and rounded to bf16 with the integer formula.
// Host and device produce the same bits, so any backend regenerates any token's inputs.
#pragma once

#include "core/numerics/bf16.h"

namespace specstate::num {

// Independent streams: one per kind of value.
enum class InputStream : uint32_t {
  kConvInput = 1,   // raw conv input x    [request, position, layer, conv channel]
  kGateA = 2,       // a (decay input)      [request, position, layer, value head * A + i]
  kGateB = 3,       // b (beta input)       [request, position, layer, value head]
  kConvWeight = 4,  // conv weight          [layer, conv channel, tap]
  kALog = 5,        // A_log                [layer, value head]
  kDtBias = 6,      // dt_bias              [layer, value head * A + i]
};

// SplitMix64's finalizer; its constants are named for the digest's vector form
// (backends/cpu/digest_lanes.h).
inline constexpr uint64_t kMix64Increment = 0x9E3779B97F4A7C15ull;
inline constexpr uint64_t kMix64Mul1 = 0xBF58476D1CE4E5B9ull;
inline constexpr uint64_t kMix64Mul2 = 0x94D049BB133111EBull;

SPECSTATE_HD inline uint64_t mix64(uint64_t z) {
  z += kMix64Increment;
  z = (z ^ (z >> 30)) * kMix64Mul1;
  z = (z ^ (z >> 27)) * kMix64Mul2;
  return z ^ (z >> 31);
}

// The hash chains mix64 over the stream and the coordinates, one round each. Values that differ
// only in the last coordinate (a token's conv inputs: one per channel) share the first four
// rounds: input_hash_prefix once, then input_hash_last per value.
SPECSTATE_HD inline uint64_t input_hash_prefix(uint64_t seed, InputStream stream, uint64_t c0,
                                               uint64_t c1, uint64_t c2) {
  uint64_t h = mix64(seed ^ (static_cast<uint64_t>(stream) << 56));
  h = mix64(h ^ c0);
  h = mix64(h ^ c1);
  return mix64(h ^ c2);
}
SPECSTATE_HD inline uint64_t input_hash_last(uint64_t prefix, uint64_t c3) {
  return mix64(prefix ^ c3);
}
SPECSTATE_HD inline uint64_t input_hash(uint64_t seed, InputStream stream, uint64_t c0, uint64_t c1,
                                        uint64_t c2, uint64_t c3) {
  return input_hash_last(input_hash_prefix(seed, stream, c0, c1, c2), c3);
}

// Uniform in [lo, lo + width) from the top 24 bits of h; width must be a power of two so the
// scaling is exact, then one float add and the bf16 rounding.
SPECSTATE_HD inline bf16_bits uniform_bf16(uint64_t h, float lo, float width) {
  const float unit = fmul(static_cast<float>(static_cast<uint32_t>(h >> 40)), 0x1p-24f);  // exact
  return bf16_from_float(fadd(lo, fmul(unit, width)));
}

// Ranges, chosen to look like trained Qwen3-Next activations and parameters:
// x in [-2, 2); a in [-4, 4) and b in [-4, 4) (beta from 0.018 to 0.98);
// conv weights in [-0.5, 0.5); A_log in [0, 2) (A from 1 to 7.4); dt_bias in [-6, -2).
struct TokenCoord {
  uint64_t seed;
  uint64_t request;
  uint64_t position;
  uint32_t layer;
};

// Where a rank's conv channels and value heads sit in the whole model. Rank r of a TP-way split
// holds key heads r*H .. r*H+H-1 and value heads r*HV .. r*HV+HV-1 (H, HV per rank), and its conv
// channels are its slice of each group of [q | k | v]. Inputs and parameters are generated from the
// model's index, so a rank computes exactly its slice of the unsplit model's state, and a state
// resliced between TP degrees (prefill/decode handoff) is what the other degree computes. TP 1
// (and rank 0's q channels and value heads at any TP) index as before ranks existed.
struct RankIndex {
  uint32_t tp = 1, rank = 0;
  uint32_t key_dim = 0, value_dim = 0;  // H*K and HV*V of one rank
  uint32_t v_heads = 0;                 // HV of one rank

  // The model's conv channel of this rank's conv channel c (its [q | k | v] order).
  SPECSTATE_HD uint32_t conv_channel(uint32_t c) const {
    if (c < key_dim) return rank * key_dim + c;
    if (c < 2 * key_dim) return (tp + rank) * key_dim + (c - key_dim);
    return 2 * tp * key_dim + rank * value_dim + (c - 2 * key_dim);
  }
  // The model's value head of this rank's value head hv.
  SPECSTATE_HD uint32_t value_head(uint32_t hv) const { return rank * v_heads + hv; }
  // The model's entry of a per-head value with `per_head` entries per value head (a's decay
  // inputs and dt_bias: hv * per_head + i).
  SPECSTATE_HD uint32_t head_entry(uint32_t e, uint32_t per_head) const {
    return rank * v_heads * per_head + e;
  }
};

// The position coordinate of a draft-tree node at token position `position` in branch `branch`
// (node index - depth, core/primitives.h): siblings share a position and differ in branch.
// Branch 0 is the chain's own coordinate; trace positions stay below 2^49 (rules.json
// max_length), so branches 0..63 never meet another position.
inline constexpr int kBranchShift = 56;
SPECSTATE_HD inline uint64_t tree_coordinate(uint64_t position, uint32_t branch) {
  return position + (uint64_t{branch} << kBranchShift);
}

// A token's conv input of `channel` (a channel of the whole model): gen_conv_input, or, for
// every channel of one token, conv_input_prefix once and conv_input_at per channel.
SPECSTATE_HD inline uint64_t conv_input_prefix(const TokenCoord& t) {
  return input_hash_prefix(t.seed, InputStream::kConvInput, t.request, t.position, t.layer);
}
SPECSTATE_HD inline bf16_bits conv_input_at(uint64_t prefix, uint32_t channel) {
  return uniform_bf16(input_hash_last(prefix, channel), -2.0f, 4.0f);
}
SPECSTATE_HD inline bf16_bits gen_conv_input(const TokenCoord& t, uint32_t channel) {
  return conv_input_at(conv_input_prefix(t), channel);
}
SPECSTATE_HD inline bf16_bits gen_gate_a(const TokenCoord& t, uint32_t head) {
  return uniform_bf16(input_hash(t.seed, InputStream::kGateA, t.request, t.position, t.layer, head),
                      -4.0f, 8.0f);
}
SPECSTATE_HD inline bf16_bits gen_gate_b(const TokenCoord& t, uint32_t head) {
  return uniform_bf16(input_hash(t.seed, InputStream::kGateB, t.request, t.position, t.layer, head),
                      -4.0f, 8.0f);
}
SPECSTATE_HD inline bf16_bits gen_conv_weight(uint64_t seed, uint32_t layer, uint32_t channel,
                                              uint32_t tap) {
  return uniform_bf16(input_hash(seed, InputStream::kConvWeight, layer, channel, tap, 0), -0.5f,
                      1.0f);
}
SPECSTATE_HD inline bf16_bits gen_a_log(uint64_t seed, uint32_t layer, uint32_t head) {
  return uniform_bf16(input_hash(seed, InputStream::kALog, layer, head, 0, 0), 0.0f, 2.0f);
}
SPECSTATE_HD inline bf16_bits gen_dt_bias(uint64_t seed, uint32_t layer, uint32_t head) {
  return uniform_bf16(input_hash(seed, InputStream::kDtBias, layer, head, 0, 0), -6.0f, 4.0f);
}

}  // namespace specstate::num
