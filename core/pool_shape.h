// What a backend allocates: per GDN layer a conv tensor and an SSM tensor over `state_rows`
// rows, and a payload tensor over `payload_slots` slots. Which rows mean what (scheduler rows,
// draft region, scratch) is the strategies' business in core/; a backend sees only rows.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/geometry.h"
#include "core/numerics/payload_token.h"

namespace specstate {

enum class SsmDtype : uint8_t { kF32, kBF16 };

std::string_view to_string(SsmDtype dtype);
SsmDtype parse_ssm_dtype(std::string_view text);  // "f32" | "bf16"; InputError otherwise
inline int32_t ssm_element_bytes(SsmDtype d) {
  return d == SsmDtype::kF32 ? 4 : 2;
}

struct PoolShape {
  ModelGeometry geometry;
  SsmDtype ssm_dtype = SsmDtype::kF32;
  int32_t state_rows = 0;      // rows of every layer's conv and SSM tensors
  int32_t conv_cols = 0;       // conv columns per row: W-1, or W-1+T-1 for the window strategy
  int32_t payload_slots = 0;   // replay payload slots
  int32_t payload_tokens = 0;  // tokens one payload slot holds (T)
  // Entries of the table of accepted counts that guarded tasks read (overlap scheduling), one
  // int32 per request row; a few bytes, left out of the byte counts below.
  int32_t request_rows = 0;

  // Per layer, per row / slot.
  int64_t conv_row_bytes() const {  // [conv_dim, conv_cols] bf16
    return int64_t{geometry.conv_dim()} * conv_cols * 2;
  }
  int64_t ssm_row_bytes() const {  // [HV, K, V] ssm_dtype
    return geometry.ssm_elements_per_layer() * ssm_element_bytes(ssm_dtype);
  }
  // One payload token: x, then the values a replay runs it from (core/numerics/payload_token.h).
  num::PayloadToken payload_token() const {
    const ModelGeometry& g = geometry;
    return {g.conv_dim(), g.num_k_heads, g.num_v_heads,
            g.head_k_dim, g.head_v_dim,  g.decay_values_per_head()};
  }
  int64_t payload_slot_bytes() const { return int64_t{payload_tokens} * payload_token().bytes(); }
  // All layers.
  int64_t state_row_bytes() const { return geometry.layers * (conv_row_bytes() + ssm_row_bytes()); }
  // One state as a host transfer saves it (retract, offload): W-1 conv columns and the SSM.
  int64_t saved_state_bytes() const {
    return geometry.layers *
           (int64_t{geometry.conv_dim()} * geometry.conv_state_cols() * 2 + ssm_row_bytes());
  }
  int64_t conv_bytes() const { return int64_t{state_rows} * geometry.layers * conv_row_bytes(); }
  int64_t ssm_bytes() const { return int64_t{state_rows} * geometry.layers * ssm_row_bytes(); }
  int64_t payload_bytes() const {
    return int64_t{payload_slots} * geometry.layers * payload_slot_bytes();
  }
  int64_t total_bytes() const { return conv_bytes() + ssm_bytes() + payload_bytes(); }
};

}  // namespace specstate
