// The one translation of primitive tasks into work. Every primitive that computes (prefill,
// verify in every mode, replay) is "a sequence of tokens run from one state" with the states
// and inputs the task asks to keep; the CPU backend runs these jobs as they are, the CUDA
// backend flattens them into its device job table. So both read a task the same way.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/primitives.h"

namespace specstate {

struct SequenceJob {
  bool active = true;  // false: a padding task (from = none): nothing read or written
  Guard guard;         // the task's: evaluated where the job runs (core/guard.h)
  bool from_zero = false;
  StateLoc from;
  PendingReplay pending;  // replayed first (verify only)
  // The new tokens: `count` of them, their inputs regenerated from `generated` or read from the
  // payload span of `in_slot` that starts at ring position `in_first`.
  std::optional<TokenSpan> generated;
  int32_t in_slot = kNoRow;
  int32_t in_first = 0;
  int32_t count = 0;
  // Bit j: the state after sequence token j (pending tokens first) is rounded to the pool dtype
  // (primitives.h; j < 32: a job that reads payload runs at most kMaxReplayTokens tokens).
  uint32_t round_after = 0;
  std::vector<StateWrite> writes;  // the full state after k new tokens -> row, k ascending
  // Window mode: the SSM after new token j -> ssm_only_rows[j], and the conv buffer of
  // from.conv_row rewritten as [window[1..W-2], x_0 .. x_{n-1}].
  bool window = false;
  std::array<int32_t, kMaxVerifyTokens> ssm_only_rows = VerifyTask::filled_rows<kMaxVerifyTokens>();
  int32_t payload_out_slot = kNoRow;  // payload mode: new token j's inputs -> this slot, at
  int32_t payload_out_first = 0;      // ring position payload_out_first + j
  // A tree verify: new token n continues from new token parents[n] (-1: the state after the
  // pending tokens); empty: a chain. Window mode never carries a tree.
  std::vector<int8_t> parents;

  int32_t tokens() const { return pending.count + count; }
  // The leading tokens run from the values their verify stored in a payload slot (the pending
  // ones, and every token of a replay): core/numerics/gdn_step.h, replay_row.
  int32_t stored_tokens() const { return generated ? pending.count : tokens(); }
  bool rounds_after(int32_t j) const { return j < 32 && ((round_after >> j) & 1u) != 0; }
  const int8_t* parents_or_null() const { return parents.empty() ? nullptr : parents.data(); }
};

// The order in which the recurrence runs a job's sequence tokens. A chain runs each token once,
// in order. A tree runs its nodes depth first (children in index order) with one state in
// flight, so a node whose parent is not the node just run continues from its parent's state
// another way:
//  - from the row the parent's state was written to in this job, when that row holds it
//    exactly (`rows_exact`: an fp32 pool; a full-state write of the parent): one state read;
//  - else from the base (the state after the pending tokens, kept aside once), running its
//    ancestors again, silently (no output, no write), before itself.
// Either way the same steps on the same values: the same bits as a recurrence that kept every
// node's state. Depth first, only a node that is not its parent's first child continues so.
struct RecurStep {
  int16_t token = 0;       // sequence token (a job of recurrence_steps has < 2^15 tokens)
  bool restart = false;    // load the base state before this step
  bool silent = false;     // an ancestor run again: no output, no state written
  int16_t from_node = -1;  // >= 0: load the state new token `from_node` wrote before this step
};
std::vector<RecurStep> recurrence_steps(const SequenceJob& job, bool rows_exact);
// Whether recurrence_steps restarts from the base anywhere (then the base state is kept aside
// after the pending tokens).
bool has_restart(std::span<const RecurStep> steps);
// The row of the full-state write after new token n, or kNoRow.
int32_t write_row(const SequenceJob& job, int32_t n);

std::vector<SequenceJob> sequence_jobs(std::span<const PrefillTask> tasks);
// One job per task, padding tasks inactive.
std::vector<SequenceJob> sequence_jobs(VerifyMode mode, std::span<const VerifyTask> tasks);
std::vector<SequenceJob> sequence_jobs(std::span<const ReplayTask> tasks);

// New tokens [first, first + n) of a prefill job (a chain from a stored or zero state, nothing
// pending, no payload) as a job of its own: positions moved on by `first`, the writes that fall
// inside renumbered. It starts from the state after token first - 1, which the backend carries
// from the part before (from and from_zero are the whole job's, meaningful for part 0 only).
// Backends run long prefills (a trace allows 2^24 tokens per extend) part by part, so their
// working memory and index types are bounded by the part, not by the prefill.
SequenceJob prefill_part(const SequenceJob& job, int32_t first, int32_t n);

}  // namespace specstate
