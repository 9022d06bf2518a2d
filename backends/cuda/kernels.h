// Descriptors and launchers of the CUDA backend's kernels. Plain C++ (over the CUDA runtime API
// types only), so host code in .cpp files can build descriptors and launch the exact kernels the
// backend runs; the kernels themselves live in the .cu files.
//
// One step path runs every primitive that computes (prefill, verify in every mode, replay,
// deferred replay-then-verify): a job is "a sequence of tokens run from one state" with the
// writes the primitive asks for, exactly like the CPU backend's SequenceJob. A launch is two
// kernels (step_kernels.cu): prep, per key head, and the recurrence, per value head.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/guard.h"
#include "core/numerics/hd.h"
#include "core/numerics/inputs.h"
#include "core/numerics/payload_token.h"
#include "core/primitives.h"

namespace specstate::cuda {

// Write the full state (SSM + W-1 conv window) after `after_tokens` new tokens into `row`.
struct SeqWrite {
  int32_t after_tokens;
  int32_t row;
};

struct SeqJob {
  int32_t active = 0;  // 0: padding: only zero outputs are written
  // The task's guard (core/primitives.h): the job runs only when the pool's accepted count of
  // request row guard_row is guard_count (guard_row -1: always), read on the device.
  int32_t guard_row = kNoRow;
  int32_t guard_count = 0;
  int32_t from_zero = 0;  // 1: start from the zero state, `from_*` unused
  int32_t from_ssm_row = kNoRow;
  int32_t from_conv_row = kNoRow;
  int32_t from_conv_offset = 0;
  int32_t new_count = 0;  // tokens after the pending ones
  uint64_t request_id = 0;
  int64_t first_position = 0;
  int32_t in_payload_slot = kNoRow;     // new tokens' inputs from this slot; -1: generate them
  int32_t in_payload_first = 0;         // ring position of new token 0 in in_payload_slot
  int32_t pending_slot = kNoRow;        // pending replay: pending_count tokens from this slot
  int32_t pending_first = 0;            // (from ring position pending_first), then the state
  int32_t pending_count = 0;            // rounded to the pool dtype and written to
  int32_t pending_commit_row = kNoRow;  // pending_commit_row (-1: not written)
  // Bit j: the state after sequence token j is rounded to the pool dtype (a step boundary,
  // primitives.h). Sequence tokens are at most kStepMaxTokens = 32 for jobs that read payload.
  uint32_t round_after = 0;
  int32_t first_write = 0;  // writes[first_write .. first_write + write_count)
  int32_t write_count = 0;
  int32_t payload_out_slot = kNoRow;  // payload mode: new tokens' inputs -> this slot,
  int32_t payload_out_first = 0;      // from this ring position
  int32_t rewrite_wide_conv = 0;      // window mode: conv row rewritten as [w1..w_{W-2}, x...]
  int32_t ssm_only_rows[kMaxVerifyTokens];  // window mode: SSM after new token j; -1: none
  // A prefill longer than kStepMaxTokens runs as consecutive launches of at most that many
  // tokens; between them the fp32 state and the conv window wait in the job's carry.
  int32_t from_carry = 0;  // 1: start from the carry instead of `from_*` / zeros
  int32_t to_carry = 0;    // 1: after the last token, state and window go to the carry
  // A tree verify (backends/sequence_job.h): the new tokens' parents, and the recurrence's
  // steps[first_step .. first_step + step_count) (step_count 0: every token once, in order).
  // With restarts the base state (after the pending tokens) waits in the job's carry.
  int32_t tree = 0;
  int32_t stash_base = 0;
  int32_t first_step = 0;
  int32_t step_count = 0;
  int8_t parents[kMaxTreeNodes];
};

// A RecurStep packed: bits 0..15 the sequence token, bit 16 restart, bit 17 silent, bit 18: load
// the state new token (bits 20..26) wrote first.
inline constexpr uint32_t kStepRestart = 1u << 16, kStepSilent = 1u << 17, kStepFromRow = 1u << 18;
inline constexpr int kStepNodeShift = 20;

// The pool and parameters on the device, all layers.
struct DevicePool {
  uint16_t* conv = nullptr;            // [layers, rows, conv_dim, conv_cols] bf16
  void* ssm = nullptr;                 // [layers, rows, HV, K x V] fp32 or bf16 (ssm_layout.h)
  uint8_t* payload = nullptr;          // [layers, slots, payload_tokens] of `token`
  const float* conv_taps = nullptr;    // [layers, conv_dim, W] fp32 (bf16 values)
  const float* a_log = nullptr;        // [layers, HV] fp32 (bf16 values)
  const float* dt_bias = nullptr;      // [layers, HV, A] fp32 (bf16 values)
  const int32_t* layer_ids = nullptr;  // [layers]: the model's index of each layer held
  const int32_t* accepted = nullptr;   // [request rows]: accepted counts that guards read
  int32_t layers = 0, rows = 0, conv_cols = 0, slots = 0, payload_tokens = 0;
  int32_t H = 0, HV = 0, K = 0, V = 0, W = 0;
  int32_t A = 1;  // decay values per value head: 1 (Gated DeltaNet) or K (Kimi Delta Attention)
  bool ssm_bf16 = false;
  float q_scale = 0.0f;
  uint64_t seed = 0;
  num::RankIndex model;     // the model's index of this rank's conv channels and value heads
  num::PayloadToken token;  // one payload token's layout

  SPECSTATE_HD int32_t conv_dim() const { return 2 * H * K + HV * V; }
  SPECSTATE_HD int64_t ssm_row_elements() const { return int64_t{HV} * K * V; }
};

// Whether a job of a launch runs: active, and its guard passes the device's counts.
SPECSTATE_HD inline bool job_runs(const DevicePool& p, const SeqJob& job) {
  return job.active && guard_passes(p.accepted, job.guard_row, job.guard_count);
}

// Whether a job stores a state after fewer than all of its tokens (a replay's pending tokens, a
// verify that keeps payload instead of states). A chain launch with such a job runs the
// recurrence build that decides once per chunk after which tokens it stores; a launch whose
// jobs store after every token (inline, scatter, window) runs without that bookkeeping, which
// costs the bf16 kernel registers at its cap.
SPECSTATE_HD inline bool stores_sparsely(const SeqJob& job) {
  const int32_t stored_after = job.write_count + (job.rewrite_wide_conv ? job.new_count : 0);
  return job.active && (job.pending_count > 0 || stored_after < job.new_count);
}

struct SequenceLaunch {
  const SeqJob* jobs = nullptr;      // [job_count] device
  const SeqWrite* writes = nullptr;  // device
  const uint32_t* steps = nullptr;   // device: packed recurrence steps of the tree jobs
  bool tree = false;                 // a job is a tree: the kernels' tree build runs the launch
  bool sparse_stores = false;        // a job stores_sparsely (chain launches)
  int32_t job_count = 0;
  int32_t max_tokens = 0;       // largest pending + new count of any job
  uint16_t* outputs = nullptr;  // [jobs, output_tokens, layers, HV, V] bf16, or null
  int32_t output_tokens = 0;
  float* carry_ssm = nullptr;      // [jobs, layers, HV, K x V] fp32 (ssm_layout.h), or null
  uint16_t* carry_conv = nullptr;  // [jobs, layers, conv_dim, W-1] bf16, or null
  // Per-token vectors the prep kernel hands to the recurrence kernel (step path), for tokens
  // 0 .. step_tokens-1 of every job and layer:
  float* step_qk = nullptr;     // [jobs, layers, step_tokens, H, 2, K] fp32: q_hat | k_hat
  uint16_t* step_v = nullptr;   // [jobs, layers, step_tokens, HV, V] bf16: conv output v
  float* step_gates = nullptr;  // [jobs, layers, step_tokens, HV, A + 1] fp32: A decays, beta
  int32_t step_tokens = 0;
};

// Runs the jobs of one launch, each of at most kStepMaxTokens tokens (pending + new): the prep
// kernel (conv, norms, gates, conv windows, payload per key head) then the recurrence kernel
// (per value head, launched dependent on prep so that its state loads overlap prep's end).
inline constexpr int32_t kStepMaxTokens = kMaxReplayTokens;  // a task that reads payload fits one
// A tree verify runs in one launch: its pending tokens and its nodes.
inline constexpr int32_t kStepMaxTreeTokens = kMaxReplayTokens + kMaxTreeNodes;
void launch_step(const DevicePool& pool, const SequenceLaunch& launch, cudaStream_t stream);

// The geometries the step kernels are compiled for: K = V = 16 or 128, W = 4 (K and W are
// template constants, so that state and taps stay in registers).
bool step_kernels_support(int32_t K, int32_t V, int32_t W);
// Dynamic shared memory of a launch whose longest job runs `tokens` tokens (the prep kernel's,
// which grows with them), and the most one block may take on the current device.
size_t step_shared_bytes(int32_t K, int32_t ratio, int32_t tokens);
size_t step_shared_limit();

struct CopyJob {
  int32_t src_ssm_row, src_conv_row, src_conv_offset, dst_row;
  int32_t guard_row, guard_count;  // as SeqJob's
};
// State (SSM + W-1 window columns) src -> dst_row (offset 0) for every layer. Each conv channel
// is read whole before it is written, so a window may shift inside its own row.
void launch_copy_rows(const DevicePool& pool, const CopyJob* jobs, int32_t job_count,
                      cudaStream_t stream);

// Inside payload slot `slot`, from ring position `first`: entry j <- entry from[j], j < count
// (core/primitives.h: PayloadGather, from[j] >= j and increasing).
struct GatherJob {
  int32_t slot, first, count;
  int8_t from[kMaxTreeNodes];  // entries of a path of at most kMaxTreeNodes nodes
};
static_assert(kMaxPayloadTokens <= 128, "GatherJob::from holds payload positions as int8_t");
void launch_gather_payload(const DevicePool& pool, const GatherJob* jobs, int32_t job_count,
                           cudaStream_t stream);

// accepted[counts[i].req_row] = counts[i].count for every i < n (distinct rows).
void launch_set_accepted(int32_t* accepted, const AcceptedCount* counts, int32_t n,
                         cudaStream_t stream);

// Sum of digest_block over a row's 64-bit blocks (core/numerics/digest.h), added into *result.
void launch_digest(const DevicePool& pool, const StateLoc& loc, int32_t first_col, int32_t cols,
                   unsigned long long* result, cudaStream_t stream);

// Model parameters generated on the device from the seed (core/numerics/inputs.h).
void launch_generate_params(const DevicePool& pool, float* conv_taps, float* a_log, float* dt_bias,
                            cudaStream_t stream);

// Floats whose device pair conversion (bf16_pair.cuh) differs from core/numerics/bf16.h, over
// all 2^32 bit patterns (each in a pair beside another float). Synchronous.
uint64_t count_bf16_pair_mismatches();

}  // namespace specstate::cuda
