// The decisions of the pool policy (core/strategy/pool_policy.h) that a fault (fault.h) makes
// wrongly. PolicyDecisions makes each one correctly and pool_policy.cpp asks it at every such
// point, so that the policy reads as the correct protocol; a fault is a subclass that overrides
// its one decision (policy_decisions.cpp, each marked "FAULT name"). What a fault leaves for
// later (a deferred flush, a request row's stale control) lives in its subclass and is copied
// with the policy.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/draft_tree.h"
#include "core/strategy/fault.h"
#include "core/strategy/live_table.h"
#include "core/strategy/plan.h"

namespace specstate {

// The page (logical block index) of the last of `length` tokens in pages of `page_size` tokens:
// vLLM's cdiv(length, block_size) - 1.
inline int64_t page_of_last_token(int64_t length, int32_t page_size) {
  return (length - 1) / page_size;
}

// The first extend of a request on a prefix hit, as the decisions see it.
struct PrefixHit {
  int32_t cow_src_row;  // the snapshot row the trace names
  int32_t working_row;  // the row the request starts in
  int64_t length;       // the hit's tokens
  int32_t tokens;       // the extend's new tokens
  bool tracks;          // the extend writes snapshots
};

// Where that extend starts: the row its state comes from, and how many of its last tokens it
// runs from there.
struct HitStart {
  int32_t row;
  int32_t tokens;
};

class PolicyDecisions {
 public:
  virtual ~PolicyDecisions() = default;
  // A copy for a copy of the policy.
  virtual std::unique_ptr<PolicyDecisions> clone() const {
    return std::make_unique<PolicyDecisions>(*this);
  }

  // A live state outside its working row is flushed into it (make_real): `flush` joins `plan`.
  virtual void flush(CopyCall flush, Plan& plan) { plan.push_back(std::move(flush)); }
  // Calls earlier operations left to the start of the next step: none.
  virtual Plan left_for_next_step() { return {}; }

  // A snapshot inside a step takes the state of `index`, the token that reaches its boundary,
  // whatever the step accepted (-1: it takes none).
  virtual int32_t snapshot_token(int32_t index, int32_t accepted) const { return index; }

  // A tree verify runs each node from its own parent.
  virtual std::vector<int8_t> tree_parents(const DraftTree& tree) const { return tree.parents; }
  // State-row strategies: the node holding the state after the k+1-th of `accepted` tokens is
  // the accepted path's k-th.
  virtual int32_t accepted_node(const DraftTree* tree, int32_t k, int32_t accepted) const {
    return path_node(tree, k);
  }
  // Payload strategies: the k-th accepted token's inputs, gathered to the front of the span, are
  // the accepted path's k-th node's.
  virtual int32_t gathered_node(const DraftTree& tree, int32_t k) const {
    return tree.path[size_t(k)];
  }

  // A new request starts with the replay control its strategy resets (`s`, as made).
  virtual void take_request_row(LiveState& s) {}
  // A finishing request leaves its request row nothing.
  virtual void leave_request_row(const LiveState& s) {}

  // A step without drafts continues from the live state `live` (`s`'s; `mode`: the step's).
  virtual StateLoc decode_source(const LiveState& s, StateLoc live, VerifyMode mode) const {
    return live;
  }
  // The first extend on a prefix hit runs all its tokens from the row the trace names.
  virtual HitStart prefix_hit_start(const PrefixHit& hit, int32_t page_size) const {
    return {hit.cow_src_row, hit.tokens};
  }
  // Paged: the block-table column a prefix hit of `length` tokens seeds as its running state's
  // is the page of the hit's last token in pages of the state's `page_size`, the hit's block.
  virtual int64_t hit_state_column(int64_t length, int32_t page_size) const {
    return page_of_last_token(length, page_size);
  }
  // A track write: `row` holds `request`'s state at `length`, a page boundary; a row becomes a
  // request's working row (its first extend, a resume) and what it held is gone. What the prefix
  // cache knows: the correct protocol needs nothing of it.
  virtual void snapshot_written(uint64_t request, int64_t length, int32_t row) {}
  virtual void working_row_taken(int32_t row) {}
  // The host tier: `row`'s snapshot saved into `slot`, and `slot`'s loaded into `row`.
  virtual void snapshot_offloaded(int32_t row, int32_t slot) {}
  virtual void snapshot_restored(int32_t slot, int32_t row) {}
  // A verify continues the sequence: no row is zeroed before it.
  virtual std::vector<int32_t> zeroed_before_verify(const StateLoc& from) const { return {}; }
  // The first extend of a sequence without a prefix hit starts from the zero state, whatever its
  // `tokens`.
  virtual bool prefill_starts_from_zero(int32_t tokens) const { return true; }
  // An extend's snapshot of a page boundary `boundary` tokens into it is the state after that
  // token (of its `tokens`).
  virtual int32_t extend_snapshot_after(int32_t boundary, int32_t tokens) const { return boundary; }
  // An extend writes its state (the working row, its snapshots), whatever its `tokens`; a verify
  // runs `tokens_per_verify`.
  virtual bool extend_writes_state(int32_t tokens, int32_t tokens_per_verify) const { return true; }
  // Paged: an extend ending at `end` tokens writes its state into a block the allocator gave its
  // running page, whatever `end`: the allocator materialised the pages with the scheduler's
  // lookahead.
  virtual bool chunk_end_has_block(int64_t end, int32_t page_size,
                                   int32_t tokens_per_verify) const {
    return true;
  }
  // An extend writes the snapshot of every page boundary it crosses, however few its `tokens`.
  virtual bool checkpoints_extend(int32_t tokens, int32_t page_size) const { return true; }
  // Paged: the boundary crossed at token `snap` of a verify of `tokens` tokens that accepted
  // `accepted` is copied from that token's column (its page's block, its conv offset).
  virtual int32_t boundary_column(int32_t snap, int32_t accepted, int32_t tokens) const {
    return snap;
  }
  // A verify that keeps one state per token (inline's draft rows, window's SSM blocks, paged's
  // blocks: the rollback planes) writes the state after each of its `tokens`, token j among them.
  virtual bool verify_keeps_state(int32_t j, int32_t tokens) const { return true; }
  // After a chain verify that accepted `accepted` tokens, the live state is token accepted-1's
  // (inline and window, whose conv window keeps `conv_history` = W-1 inputs).
  virtual int32_t live_token(int32_t accepted, int32_t conv_history) const { return accepted - 1; }
  // The commit after a verify (scatter's copy, replay's replay) is issued.
  virtual bool commits_verify() const { return true; }
  // Scatter's commit copies the state of the accepted token, `commit`, SSM and conv alike.
  virtual StateLoc scatter_commit(StateLoc commit, const VerifyTask& verify) const {
    return commit;
  }
  // A prefill/decode handoff cuts the sender's conv windows by heads, group by group.
  virtual ConvSlicing handoff_conv() const { return ConvSlicing::kByHeads; }
  // Layers of a restore's transfer that have landed when the next event runs (of `layers`);
  // the rest land after that event.
  virtual int32_t restored_before_next_event(int32_t layers) const { return layers; }

  // The one task standing for a step's padding rows (index -1 everywhere) reads and writes
  // nothing of the pool of shape `pool`.
  virtual VerifyTask padding_task(int32_t tokens, VerifyMode mode, const PoolShape& pool) const {
    return {};
  }

  // The ring's snapshot inside a verify replays `replay`: from the checkpoint the history it
  // lacks, then the verify's `new_tokens` tokens up to the boundary (from ring position
  // `new_first`).
  virtual ReplayTask ring_snapshot(ReplayTask replay, int32_t new_tokens, int32_t new_first) const {
    return replay;
  }
  // The ring's host commit adds this step's accepted count to the history.
  virtual int32_t ring_commit_count(uint64_t request, int32_t accepted) { return accepted; }

  // Retract makes the live state real in the working row, then saves that row, which resume
  // writes back.
  virtual bool retract_makes_real() const { return true; }
  virtual bool retract_saves() const { return true; }

  // Takes what `other`, a copy of these decisions that went on, holds for `request`
  // (PoolPolicy::adopt).
  virtual void adopt(uint64_t request, const PolicyDecisions& other) {}
};

// The correct decisions, or those with `fault`'s one wrong decision. A fault of overlap
// scheduling (FaultInfo::overlap) is the host's (host_scheduler.h): the policy's are correct.
std::unique_ptr<PolicyDecisions> make_policy_decisions(Fault fault);

// PolicyDecisions held by value: a copy clones them, with a fault's state.
class Decisions {
 public:
  explicit Decisions(Fault fault) : d_(make_policy_decisions(fault)) {}
  Decisions(const Decisions& other) : d_(other.d_->clone()) {}
  Decisions& operator=(const Decisions& other) {
    d_ = other.d_->clone();
    return *this;
  }
  Decisions(Decisions&&) = default;
  Decisions& operator=(Decisions&&) = default;

  PolicyDecisions* operator->() const { return d_.get(); }
  const PolicyDecisions& operator*() const { return *d_; }

 private:
  std::unique_ptr<PolicyDecisions> d_;
};

}  // namespace specstate
