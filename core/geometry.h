// Model geometry of the recurrent (linear-attention) layers and the model presets
// (docs/performance.md lists their footprints).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/index_list.h"
#include "core/numerics/inputs.h"
#include "core/recurrence.h"

namespace specstate {

struct ModelGeometry {
  std::string preset;  // e.g. "qwen3-next-80b-a3b"
  int32_t tp = 1;      // tensor-parallel degree the head counts below are divided by
  int32_t rank = 0;    // which of the tp ranks: its heads are the model's rank*H .. (RankIndex)
  RecurrenceKind recurrence = RecurrenceKind::kGatedDeltaNet;  // what the layers below run
  int32_t layers = 0;       // recurrent layers (full-attention layers hold no recurrent state)
  int32_t num_k_heads = 0;  // H: query/key heads on this rank
  int32_t num_v_heads = 0;  // HV: value heads on this rank
  int32_t head_k_dim = 0;   // K
  int32_t head_v_dim = 0;   // V
  int32_t conv_width = 0;   // W: the conv state keeps the last W-1 inputs
  // The model's index of each layer held, when only a subset is simulated (`--layers`); empty
  // means all of them, 0 .. layers-1. Inputs and parameters are generated from the model index,
  // and the GDN layers are independent, so a subset computes exactly those layers' bytes.
  std::vector<int32_t> layer_ids;

  int32_t key_dim() const { return num_k_heads * head_k_dim; }
  int32_t value_dim() const { return num_v_heads * head_v_dim; }
  // Conv channels [q | k | v].
  int32_t conv_dim() const { return 2 * key_dim() + value_dim(); }
  int32_t conv_state_cols() const { return conv_width - 1; }
  // Value heads sharing one query/key head (value head h uses key head h / ratio).
  int32_t v_heads_per_k_head() const { return num_v_heads / num_k_heads; }
  // K^-0.5, rounded once from float64 (0x1.6a09e6p-4f for K = 128).
  float query_scale() const;
  int64_t ssm_elements_per_layer() const { return int64_t{num_v_heads} * head_k_dim * head_v_dim; }
  // Decay values of one token per value head: 1 (a scalar per head) or K (per key channel).
  int32_t decay_values_per_head() const {
    return recurrence_info(recurrence).decay_values(head_k_dim);
  }
  // The shape of a value per value head and decay value (a, dt_bias, alpha): [HV] for one decay
  // per head, [HV, K] for one per key channel.
  std::vector<int64_t> decay_shape() const {
    if (decay_values_per_head() == 1) return {num_v_heads};
    return {num_v_heads, decay_values_per_head()};
  }
  // The model's index of held layer l.
  int32_t layer_id(int32_t l) const { return layer_ids.empty() ? l : layer_ids[l]; }
  // The model's index of this rank's conv channels and value heads.
  num::RankIndex rank_index() const {
    return {uint32_t(tp), uint32_t(rank), uint32_t(key_dim()), uint32_t(value_dim()),
            uint32_t(num_v_heads)};
  }
};

struct PresetInfo {
  std::string_view name;
  std::string_view description;
  RecurrenceKind recurrence;
  int32_t gdn_layers, total_layers, num_k_heads, num_v_heads;  // gdn_layers: the recurrent ones
  bool provisional;                                            // geometry from third-party tables
};

const std::vector<PresetInfo>& presets();

// The geometry of `preset` on rank `rank` of a TP-way split. Throws InputError for an unknown
// preset, a TP degree that does not divide the head counts, or a rank outside 0..tp-1.
ModelGeometry make_geometry(std::string_view preset, int32_t tp = 1, int32_t rank = 0);

// A geometry that is not a preset (preset "custom", tp 1), of `recurrence`: `layers` layers, H key
// heads and HV value heads per rank, head dims K and V, conv width W. Throws InputError naming
// the field for a value outside its range, HV not a multiple of H, K not a multiple of the
// reduction chains (8), or a conv_dim (when given, > 0) other than 2*H*K + HV*V. Whether a
// backend's kernels run it is the backend's to say (make_backend throws InputError).
ModelGeometry make_custom_geometry(int32_t layers, int32_t num_k_heads, int32_t num_v_heads,
                                   int32_t head_k_dim, int32_t head_v_dim, int32_t conv_width,
                                   int32_t conv_dim = 0,
                                   RecurrenceKind recurrence = RecurrenceKind::kGatedDeltaNet);

// `--layers`: a list such as "0,17,35", "0-3" or "0-3,17" of layers 0..layers-1 (parse_index_list).
std::vector<int32_t> parse_layer_list(std::string_view text, int32_t layers);

// `g` holding only the model layers `ids` (from parse_layer_list; empty: all of g's layers).
ModelGeometry with_layers(ModelGeometry g, std::vector<int32_t> ids);

// Channel `c` of a conv window [q | k | v] with `key_heads` key heads of `k_dim` channels each
// (in q and in k) and value heads of `v_dim`, named for reports: "channel 70 (k head 0, i 6)".
std::string conv_channel_text(int64_t c, int64_t key_heads, int64_t k_dim, int64_t v_dim);

// The same for a rank of `g`; at TP > 1 with the model's head, which is what a reslice moves:
// "channel 70 (k head 0 = model head 2, i 6)".
std::string conv_channel_text(const ModelGeometry& g, int64_t c);

// Value head `hv` of a rank of `g`, named for reports: "head 1", at TP > 1 "head 1 = model head 5".
std::string value_head_text(const ModelGeometry& g, int64_t hv);

}  // namespace specstate
