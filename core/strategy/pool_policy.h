// PoolPolicy: one strategy's bookkeeping for one pool. It owns the live-state table (for each
// request: where its live state really is — row, conv offset, pending replay) and turns each
// scheduler operation into a Plan of backend calls. It never touches state bytes itself, so the
// same policy drives every backend; a difference between backends is a kernel bug, a
// difference between strategies a protocol bug.
//
// Operations that need a real row make the live state real first (deferred and ring: replay the
// pending tokens; inline/window: flush the live row / window into the working row): retract,
// finish, and a chunked extend. The ring also folds its history into the working row at a decode
// step (the step without drafts runs in place, from a real state), and when the history is long
// (RingParams); a snapshot inside its verify replays the history into the track row. A snapshot at
// a page boundary crossed inside a verify is taken from the state after the boundary token, never
// from the post-accept state.
//
// A policy built with a Fault (core/strategy/fault.h) makes one known wrong decision instead:
// every decision a fault changes is asked of PolicyDecisions (core/strategy/policy_decisions.h),
// whose faulty subclasses are marked "FAULT name". Without one, nothing changes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "core/draft_tree.h"
#include "core/strategy/fault.h"
#include "core/strategy/live_table.h"
#include "core/strategy/plan.h"
#include "core/strategy/policy_decisions.h"
#include "core/strategy/strategy.h"

namespace specstate {

// Fill `row` with the state after the request's first `length` tokens.
struct Snapshot {
  int64_t length = 0;
  int32_t row = kNoRow;
};

struct ExtendOp {
  uint64_t request = 0;
  int32_t req_row = kNoRow;  // a new request's rows; ignored when it is running
  int32_t working_row = kNoRow;
  int32_t tokens = 0;
  int64_t prefix_len = 0;  // new request on a prefix hit: start from cow_src_row
  int32_t cow_src_row = kNoRow;
  std::vector<Snapshot> snapshots;
};

struct VerifyOp {
  uint64_t request = 0;
  int32_t accepted = 0;  // 1..T (1 for decode); a tree's path length; 0: discarded (overlap)
  std::optional<Snapshot> snapshot;
  std::optional<DraftTree> tree;  // a tree verify (PoolConfig::tree_nodes > 0) instead of T tokens
};

class PoolPolicy {
 public:
  // InputError for a fault that does not concern `kind` (fault_concerns()).
  PoolPolicy(StrategyKind kind, const PoolConfig& config, Fault fault = Fault::kNone);

  StrategyKind kind() const { return layout_.kind; }
  Fault fault() const { return fault_; }
  const StrategyLayout& layout() const { return layout_; }

  // InputError for a request that does not exist or is not running, an accepted length outside
  // 1..T, a snapshot length that is not crossed by the accepted tokens.
  Plan extend(const ExtendOp& op);
  Plan verify(std::span<const VerifyOp> batch, int32_t padding);
  Plan decode(std::span<const VerifyOp> batch, int32_t padding);  // T = 1, accepted = 1

  // A step's plan in the parts overlap scheduling (core/strategy/host_scheduler.h) keeps apart:
  // what runs before the verify, the verify, what reads its results (snapshots), and what depends
  // on the step's own accepted counts (commits). verify() and decode() run them in this order.
  struct StepPlans {
    Plan before_verify;
    VerifyCall verify;
    Plan after_verify;
    Plan after_accept;
    Plan joined() &&;
  };
  StepPlans verify_parts(std::span<const VerifyOp> batch, int32_t padding);
  StepPlans decode_parts(std::span<const VerifyOp> batch, int32_t padding);
  Plan retract(uint64_t request);
  Plan resume(uint64_t request, int32_t req_row, int32_t working_row);
  // Frees a running request's rows; drops a retracted one's saved state (DropSavedCall).
  Plan finish(uint64_t request);
  // The host tier of the prefix cache: a cache row holds a whole state at offset 0 in every
  // strategy (its snapshots are written so), so an offload saves that row and a restore writes
  // it back, with no entry of the table involved.
  Plan offload(int32_t row, int32_t slot);
  Plan check() const { return {}; }
  // A restore's transfer: what has landed when the next event runs, and what lands after it
  // (empty unless a fault splits the transfer). restore() is both, in order.
  struct RestorePlans {
    Plan before_next;
    Plan after_next;
  };
  RestorePlans restore_parts(int32_t slot, int32_t row);
  Plan restore(int32_t slot, int32_t row);
  // A prefill/decode handoff: `row` receives `request`'s state after `length` tokens from the
  // prefill instance (at TP config.prefill_tp), a snapshot like any cache row's.
  Plan handoff(uint64_t request, int64_t length, int32_t row);

  // Where to read a running request's live state, and the plan that makes it readable without
  // changing the table (deferred with pending tokens: replay them into the inspection row).
  struct Readable {
    Plan plan;
    StateLoc loc;
  };
  Readable readable(uint64_t request) const;

  // Takes `other`'s live-state entry for `request` (none: erases it): `other` is a copy of this
  // policy that went on with other accepted counts (overlap scheduling's late bookkeeping).
  // `length_error` (fault advanced-length only) is added to the adopted length.
  void adopt(uint64_t request, const PoolPolicy& other, int64_t length_error = 0);

  // Merges the table's recent changes into its shared base when they are many
  // (LiveTable::kCompactAt); call it before copying the policy many times.
  void compact_table() { table_.compact(LiveTable::kCompactAt); }
  // The step's track writes reach the prefix cache's view (PolicyDecisions::snapshot_written);
  // a step does it itself, and overlap scheduling for the variants it plans without snapshots.
  void note_snapshots(std::span<const VerifyOp> batch);

  const LiveState& live(uint64_t request) const;
  bool has(uint64_t request) const { return table_.contains(request); }
  // Every entry by ascending request (a copy: O(entries)).
  std::map<uint64_t, LiveState> table() const { return table_.entries(); }

 private:
  LiveState& running(uint64_t request, const char* op);
  void check_step(std::span<const VerifyOp> batch, int32_t tokens, bool decode);
  // A verify (T tokens, even when T = 1) or a decode step without drafts (1 token, in place).
  StepPlans step(std::span<const VerifyOp> batch, int32_t padding, int32_t tokens, bool decode);
  void consume_pending(LiveState& s) const;
  // The row a step writes its state into: the working row, or paged's running block.
  int32_t running_row(const LiveState& s) const;
  // Paged: the page (logical block index) of the last token of a step of `tokens` tokens from
  // `length`, drafts included (vLLM's cdiv(num_tokens, block_size) - 1); 0 without pages.
  int64_t running_page(int64_t length, int32_t tokens) const;
  // Paged: what a block-table entry that the allocator did not fill for this request holds: block
  // id 0 (vLLM's null block, shared and written by padding) or a recycled id the entry was not
  // cleared of; here pool row 0, which the protocol may give any request.
  static constexpr int32_t kUnallocatedBlock = 0;
  // Paged: a fresh block table at s.page whose running block is the working row.
  void place_pages(LiveState& s) const;
  // Paged: s's block table moved to running page `page`. A block of the old table keeps its page;
  // a new page takes the first of the request's blocks that is neither kept nor the old running
  // block, which the move still reads.
  void map_pages(LiveState& s, int64_t page) const;
  // Paged: where the first extend of `s` on a prefix hit of `length` tokens reads its state, as
  // the block table holds it at the column the hit seeds (PolicyDecisions::hit_state_column):
  // the hit's page holds the hit's row (`task.from` as set), the running page and its lookahead
  // their blocks, any other column kUnallocatedBlock.
  void read_hit_through_table(const LiveState& s, int64_t length, PrefillTask& task) const;
  // Paged, before a step of `tokens` tokens: when its running page is not the live state's, the
  // live state is copied into the new page's block (vLLM's copy before the forward pass).
  void move_page(uint64_t request, LiveState& s, int32_t tokens, CopyCall& moves) const;
  // Appends the calls that make `request`'s live state real in its working row.
  void make_real(uint64_t request, LiveState& s, Plan& plan);
  // Token index inside a step starting at `length` whose state `op`'s snapshot takes; -1: none.
  int32_t snapshot_index(const VerifyOp& op, int64_t length) const;
  // The verify token (tree node) whose state is the state after the k+1-th accepted token.
  int32_t accepted_node(const VerifyOp& op, int32_t k) const;
  // One request's part of a step: its task `t` (tokens and source set), the calls it adds to
  // `p`, and its live-state entry updated. `snap`: snapshot_index() of the op.
  struct StepPlan;
  // The payload strategies' tree: the accepted path moved to the front of the span the verify
  // wrote from ring position `first`, so that it replays as a chain.
  void gather_path(const VerifyOp& op, int32_t slot, int32_t first, StepPlan& p) const;
  void plan_discarded(const VerifyOp& op, LiveState& s, VerifyTask& t);
  void plan_decode(const VerifyOp& op, LiveState& s, VerifyTask& t, StepPlan& p);
  void plan_verify(const VerifyOp& op, LiveState& s, VerifyTask& t, StepPlan& p);
  void scatter_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t, StepPlan& p);
  void draft_rows_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t,
                         StepPlan& p);  // inline, window, paged
  void replay_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t, StepPlan& p);
  void deferred_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t, StepPlan& p);
  void ring_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t, StepPlan& p);

  StrategyLayout layout_;
  LiveTable table_;  // cheap to copy (live_table.h); compacted at the start of each operation

  Fault fault_ = Fault::kNone;
  Decisions decisions_;  // the correct ones, or those with fault_'s wrong one
};

}  // namespace specstate
