// Addressing of one job of a step launch, seen from one layer: every tensor a kernel touches for
// the job (pool conv and SSM rows, payload slots, carry, step scratch) and where each sequence
// token's inputs come from. The only definition of these offsets on the device.
#pragma once

#include "backends/cuda/kernels.h"
#include "core/draft_tree.h"
#include "core/numerics/inputs.h"

namespace specstate::cuda {

struct JobView {
  const DevicePool& p;
  const SequenceLaunch& L;
  const SeqJob& job;
  int task, layer;

  __device__ uint16_t* conv_at(int row, int ch, int col) const {
    return p.conv + ((int64_t{layer} * p.rows + row) * p.conv_dim() + ch) * p.conv_cols + col;
  }
  // [W-1] window of channel ch in the job's carry.
  __device__ uint16_t* carry_conv_at(int ch) const {
    return L.carry_conv + ((int64_t{task} * p.layers + layer) * p.conv_dim() + ch) * (p.W - 1);
  }
  // Token j (< payload_tokens) of the span of `slot` that starts at ring position `first`.
  __device__ uint8_t* payload_at(int slot, int first, int j) const {
    int token = first + j;
    if (token >= p.payload_tokens) token -= p.payload_tokens;
    return p.payload +
           ((int64_t{layer} * p.slots + slot) * p.payload_tokens + token) * p.token.bytes();
  }
  // Where new token jn's payload goes in payload mode.
  __device__ uint8_t* payload_out(int jn) const {
    return payload_at(job.payload_out_slot, job.payload_out_first, jn);
  }
  // Element offset of head hv of `row` in the pool's SSM tensor.
  __device__ int64_t ssm_head(int row, int hv) const {
    return (int64_t{layer} * p.rows + row) * p.ssm_row_elements() + int64_t{hv} * p.K * p.V;
  }
  __device__ float* carry_ssm_head(int hv) const {
    return L.carry_ssm + (int64_t{task} * p.layers + layer) * p.ssm_row_elements() +
           int64_t{hv} * p.K * p.V;
  }
  // The leading sequence tokens replayed from the values their verify stored (the pending ones,
  // and every token of a replay): backends/sequence_job.h, stored_tokens.
  __device__ int stored_tokens() const {
    return job.in_payload_slot != kNoRow ? total_tokens() : job.pending_count;
  }
  // Stored token j (< stored_tokens()) in its payload slot.
  __device__ const uint8_t* stored_token(int j) const {
    if (j < job.pending_count) return payload_at(job.pending_slot, job.pending_first, j);
    return payload_at(job.in_payload_slot, job.in_payload_first, j - job.pending_count);
  }
  // Generated token j's coordinate (a tree node's: its depth's position in its branch). The
  // step kernels are built for chain launches and for launches with a tree (kTree): a chain
  // launch keeps the plain arithmetic of a chain.
  template <bool kTree>
  __device__ num::TokenCoord coord(int j) const {
    const int8_t* parents = kTree && job.tree ? job.parents : nullptr;
    return {p.seed, job.request_id,
            tree::node_position(parents, job.first_position, j - job.pending_count),
            uint32_t(p.layer_ids[layer])};
  }
  // The hist columns (core/draft_tree.h) of the W taps of sequence token j's conv.
  template <int W, bool kTree>
  __device__ void tap_columns(int j, int (&cols)[W]) const {
    const int8_t* parents = kTree && job.tree ? job.parents : nullptr;
    cols[W - 1] = (W - 1) + j;
#pragma unroll
    for (int t = W - 1; t > 0; --t)
      cols[t - 1] =
          kTree ? tree::previous_column(parents, job.pending_count, W - 1, cols[t]) : cols[t] - 1;
  }
  // Entry e of the recurrence's order: packed as kernels.h says (a chain: token e).
  template <bool kTree>
  __device__ uint32_t step(int e) const {
    return kTree && job.step_count ? L.steps[job.first_step + e] : uint32_t(e);
  }
  template <bool kTree>
  __device__ int steps() const {
    return kTree && job.step_count ? job.step_count : total_tokens();
  }
  // (job, layer, token j) in the step scratch.
  __device__ int64_t token_index(int j) const {
    return (int64_t{task} * p.layers + layer) * L.step_tokens + j;
  }
  __device__ int total_tokens() const {
    return job.pending_count + job.new_count;
  }
};

}  // namespace specstate::cuda
