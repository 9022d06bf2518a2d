// One token of a payload slot, as the replay strategies keep it (replay, deferred, ring): the
// token's raw conv input x [conv_dim] bf16, then the values its verify computed that a replay
// needs, fp32: alpha [HV, A], k_hat [H, K], delta [HV, V], A the decay values per value head
// (1 for Gated DeltaNet, core/recurrence.h). A replay runs the token from them
// (gdn_step.h: replay_row) and takes its conv window from x. The only definition of the layout,
// for the host (PoolShape::payload_token) and the device (DevicePool).
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/numerics/bf16.h"
#include "core/numerics/hd.h"

namespace specstate::num {

struct PayloadToken {
  int32_t conv_dim = 0, H = 0, HV = 0, K = 0, V = 0, A = 1;

  SPECSTATE_HD int32_t value_floats() const { return HV * A + H * K + HV * V; }
  SPECSTATE_HD int64_t x_bytes() const { return int64_t{conv_dim} * 2; }
  SPECSTATE_HD int64_t value_bytes() const { return int64_t{value_floats()} * 4; }
  // conv_dim is a multiple of 8 on every backend, so the values start 16-byte aligned.
  SPECSTATE_HD int64_t bytes() const { return x_bytes() + value_bytes(); }
  // What a replay of n stored tokens reads: every token's values, and x of the last W-1 only
  // (the conv window after the span, and the taps of the tokens a verify runs after it; an
  // earlier x is never read).
  SPECSTATE_HD int64_t replay_read_bytes(int64_t n, int window_cols) const {
    return n * value_bytes() + (n < window_cols ? n : window_cols) * x_bytes();
  }

  template <class Byte>
  SPECSTATE_HD static auto* x(Byte* token) {
    using Bits = std::conditional_t<std::is_const_v<Byte>, const bf16_bits, bf16_bits>;
    return reinterpret_cast<Bits*>(token);
  }
  template <class Byte>
  SPECSTATE_HD auto* values(Byte* token) const {  // the fp32 values after x
    using Float = std::conditional_t<std::is_const_v<Byte>, const float, float>;
    return reinterpret_cast<Float*>(token + int64_t{conv_dim} * 2);
  }
  // Value head hv's A decay values.
  template <class Byte>
  SPECSTATE_HD auto* decay(Byte* token, int hv) const {
    return values(token) + hv * A;
  }
  template <class Byte>
  SPECSTATE_HD auto* k_hat(Byte* token, int h) const {
    return values(token) + HV * A + h * K;
  }
  template <class Byte>
  SPECSTATE_HD auto* delta(Byte* token, int hv) const {
    return values(token) + HV * A + H * K + hv * V;
  }
};

}  // namespace specstate::num
