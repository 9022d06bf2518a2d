#include "core/reslice.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/errors.h"

namespace specstate {
namespace {

void check_same_model(const ModelGeometry& to, const ModelGeometry& from, size_t ranks) {
  const bool same = to.preset == from.preset && to.recurrence == from.recurrence &&
                    to.layers == from.layers && to.layer_ids == from.layer_ids &&
                    to.head_k_dim == from.head_k_dim && to.head_v_dim == from.head_v_dim &&
                    to.conv_width == from.conv_width &&
                    to.tp * to.num_k_heads == from.tp * from.num_k_heads &&
                    to.tp * to.num_v_heads == from.tp * from.num_v_heads;
  if (!same) {
    throw InputError("a state resliced from " + from.preset + " TP " + std::to_string(from.tp) +
                     " to " + to.preset + " TP " + std::to_string(to.tp) +
                     ": not one model's layers and heads");
  }
  SPECSTATE_ASSERT(ranks == size_t(from.tp), "a state of every sending rank");
}

struct Source {
  int32_t rank, channel;  // which rank of `from` holds a model channel, and where
};

// The inverse of num::RankIndex::conv_channel over the ranks of `from`.
Source conv_source(const ModelGeometry& from, int32_t model_channel) {
  const int32_t kd = from.key_dim(), vd = from.value_dim(), all_keys = from.tp * kd;
  if (model_channel < all_keys) return {model_channel / kd, model_channel % kd};
  if (model_channel < 2 * all_keys) {
    const int32_t o = model_channel - all_keys;
    return {o / kd, kd + o % kd};
  }
  const int32_t o = model_channel - 2 * all_keys;
  return {o / vd, 2 * kd + o % vd};
}

}  // namespace

RowBytes reslice_state(const ModelGeometry& to, const ModelGeometry& from,
                       std::span<const RowBytes> from_ranks, SsmDtype dtype, ConvSlicing conv) {
  check_same_model(to, from, from_ranks.size());
  const int32_t wc = to.conv_state_cols(), C = to.conv_dim(), C_from = from.conv_dim();
  const int64_t head_bytes = int64_t{to.head_k_dim} * to.head_v_dim * ssm_element_bytes(dtype);
  const num::RankIndex model = to.rank_index();
  RowBytes out;
  out.conv.resize(size_t(to.layers) * C * wc);
  out.ssm.resize(size_t(to.layers) * to.num_v_heads * head_bytes);
  for (int32_t l = 0; l < to.layers; ++l) {
    for (int32_t c = 0; c < C; ++c) {
      const int32_t m = conv == ConvSlicing::kByHeads ? int32_t(model.conv_channel(uint32_t(c)))
                                                      : to.rank * C + c;
      const Source s = conv_source(from, m);
      const num::bf16_bits* src =
          from_ranks[s.rank].conv.data() + (int64_t{l} * C_from + s.channel) * wc;
      std::copy(src, src + wc, out.conv.data() + (int64_t{l} * C + c) * wc);
    }
    for (int32_t hv = 0; hv < to.num_v_heads; ++hv) {
      const int32_t m = int32_t(model.value_head(uint32_t(hv)));
      const int32_t rank = m / from.num_v_heads, head = m % from.num_v_heads;
      const uint8_t* src =
          from_ranks[rank].ssm.data() + (int64_t{l} * from.num_v_heads + head) * head_bytes;
      std::memcpy(out.ssm.data() + (int64_t{l} * to.num_v_heads + hv) * head_bytes, src,
                  size_t(head_bytes));
    }
  }
  return out;
}

}  // namespace specstate
