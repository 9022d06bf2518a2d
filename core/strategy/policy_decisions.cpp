#include "core/strategy/policy_decisions.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "core/errors.h"

namespace specstate {
namespace {

template <class Self>
class Faulty : public PolicyDecisions {
 public:
  std::unique_ptr<PolicyDecisions> clone() const override {
    return std::make_unique<Self>(static_cast<const Self&>(*this));
  }
};

// The nodes at depth d of `tree`, in node order.
std::vector<int32_t> nodes_at_depth(const DraftTree& tree, int32_t d) {
  std::vector<int32_t> nodes;
  for (int32_t i = 0; i < tree.nodes(); ++i) {
    if (tree::depth(tree.parents.data(), i) == d) nodes.push_back(i);
  }
  return nodes;
}

// FAULT no-flush-on-retract: the working row is taken to hold the live state as it is, so the
// draft->working flush is skipped and the swap-out saves a stale state.
// FAULT ring-donate-without-history (SGLang #37837): moving the request's state out of its slot
// copies the checkpoint but not the ring, and the cursors are not reset: the request comes back
// with its history length and reads it from its new request row's ring.
class RetractWithoutMakingReal : public Faulty<RetractWithoutMakingReal> {
  bool retract_makes_real() const override { return false; }
};

// FAULT stale-flush-after-reuse (tokenspeed #159 review): the draft->working flush is left for
// the next step, which runs it with these rows after they may have been freed and handed to
// another request.
class StaleFlushAfterReuse : public Faulty<StaleFlushAfterReuse> {
  void flush(CopyCall flush, Plan&) override {
    for (size_t i = 0; i < flush.tasks.size(); ++i)
      left_.add(flush.tasks[i], flush.requests[i]);
  }
  Plan left_for_next_step() override {
    if (left_.tasks.empty()) return {};
    return {std::exchange(left_, {})};
  }

  CopyCall left_;
};

// FAULT decode-reads-old-row (vLLM #40875): the step without drafts ignores the last verify's
// accepted length and reads its index 0: inline's working row, the conv column 0 of window's
// working row and of paged's running block.
class DecodeReadsOldRow : public Faulty<DecodeReadsOldRow> {
  StateLoc decode_source(const LiveState& s, StateLoc, VerifyMode mode) const override {
    return mode == VerifyMode::kWindow ? StateLoc{s.loc.ssm_row, s.loc.conv_row, 0}
                                       : StateLoc::at(s.working_row);
  }
};

// FAULT snapshot-pre-accept (SGLang #37817): the boundary test uses the pre-accept length, which
// only sees a boundary reached by the step's first token; later ones are missed.
class SnapshotPreAccept : public Faulty<SnapshotPreAccept> {
  int32_t snapshot_token(int32_t index, int32_t) const override { return index > 0 ? -1 : index; }
};

// FAULT snapshot-post-accept (vLLM #43559): the snapshot is taken from the post-accept state.
class SnapshotPostAccept : public Faulty<SnapshotPostAccept> {
  int32_t snapshot_token(int32_t, int32_t accepted) const override { return accepted - 1; }
};

// FAULT retract-no-save (SGLang #35957): the rows are freed and nothing is saved; the request
// continues from whatever its new working row holds.
class RetractNoSave : public Faulty<RetractNoSave> {
  bool retract_saves() const override { return false; }
};

// FAULT verify-as-extend (tokenspeed #506): the target verify runs as a fresh extend, from the
// zero state, in the middle of the sequence.
class VerifyAsExtend : public Faulty<VerifyAsExtend> {
  std::vector<int32_t> zeroed_before_verify(const StateLoc& from) const override {
    if (from.conv_row == from.ssm_row) return {from.ssm_row};
    return {from.ssm_row, from.conv_row};
  }
};

// A padding task that reads and writes `row` (and payload slot `slot` in payload mode).
VerifyTask padding_at(int32_t tokens, VerifyMode mode, int32_t row, int32_t slot) {
  VerifyTask pad;
  pad.tokens = {kPaddingRequest, 0, tokens};
  pad.from = StateLoc::at(row);
  pad.out_rows[0] = row;
  if (mode == VerifyMode::kPayload) pad.payload_slot = slot;
  return pad;
}

// FAULT padding-writes-row (SGLang #17404): padding entries run on dummy inputs with index 0 for
// every row and slot, and row 0 is a real, allocatable row.
class PaddingWritesRow : public Faulty<PaddingWritesRow> {
  VerifyTask padding_task(int32_t tokens, VerifyMode mode, const PoolShape&) const override {
    return padding_at(tokens, mode, 0, 0);
  }
};

// FAULT padding-wraps-to-last-row (FlashInfer #5042): the kernel reads the padding index -1 as
// an index from the end, the pool's last row (and last payload slot), which a request may own.
class PaddingWrapsToLastRow : public Faulty<PaddingWrapsToLastRow> {
  VerifyTask padding_task(int32_t tokens, VerifyMode mode, const PoolShape& pool) const override {
    return padding_at(tokens, mode, pool.state_rows - 1, pool.payload_slots - 1);
  }
};

// FAULT restore-read-early (SGLang #38866): the transfer engine signals a layer's completion by
// its global index, the reader of a pipeline stage waits on its local one, so the reader of a
// restored row goes ahead when the first layers have landed: here half of them.
class RestoreReadEarly : public Faulty<RestoreReadEarly> {
  int32_t restored_before_next_event(int32_t layers) const override { return layers / 2; }
};

// FAULT handoff-conv-one-block (SGLang #30997): the decode instance of a prefill/decode handoff
// with another TP degree takes its rank's conv channels as one contiguous 1/tp block of the
// concatenated [q | k | v] state, where each group is split by heads.
class HandoffConvOneBlock : public Faulty<HandoffConvOneBlock> {
  ConvSlicing handoff_conv() const override { return ConvSlicing::kContiguous; }
};

// FAULT stale-replay-control (TRT-LLM #14509), stale-ring-cursor: the request row's replay
// control (deferred: pending count and payload slot; ring: the cursors cache_base and hist_len)
// is not reset when a new request takes the row: it keeps its last occupant's.
class StaleReplayControl : public Faulty<StaleReplayControl> {
  void take_request_row(LiveState& s) override {
    const auto old = left_.find(s.req_row);
    if (old == left_.end()) return;
    s.pending = old->second.pending;
    s.pending_slot = old->second.pending_slot;
    s.pending_first = old->second.pending_first;
    s.pending_rounds = old->second.pending_rounds;
  }
  void leave_request_row(const LiveState& s) override {
    if (!s.retracted) left_[s.req_row] = s;
  }

  std::map<int32_t, LiveState> left_;  // req_row -> its last occupant's entry at finish
};

// FAULT conv-ssm-split-commit: the SSM is rolled back to token a-1, the conv window is not (it
// stays at the last verified token).
class ConvSsmSplitCommit : public Faulty<ConvSsmSplitCommit> {
  StateLoc scatter_commit(StateLoc commit, const VerifyTask& verify) const override {
    commit.conv_row = verify.out_rows[size_t(verify.tokens.count - 1)];
    return commit;
  }
};

// FAULT ring-snapshot-unfolded (the ring analogue of vLLM #43559): the snapshot is published from
// the checkpoint as it is, without replaying the unfolded history.
class RingSnapshotUnfolded : public Faulty<RingSnapshotUnfolded> {
  ReplayTask ring_snapshot(ReplayTask replay, int32_t new_tokens,
                           int32_t new_first) const override {
    replay.count = new_tokens;
    replay.first_token = new_first;
    replay.round_after = 0;
    return replay;
  }
};

// FAULT ring-stale-accepted (vLLM #51508): the commit reads the accepted count its buffer held
// from the request's previous step: 0 before its first verify (what a discarded step leaves),
// then always one step late.
class RingStaleAccepted : public Faulty<RingStaleAccepted> {
  int32_t ring_commit_count(uint64_t request, int32_t accepted) override {
    std::swap(accepted, last_[request]);
    return accepted;
  }
  void adopt(uint64_t request, const PolicyDecisions& other) override {
    const auto& from = static_cast<const RingStaleAccepted&>(other).last_;
    if (auto it = from.find(request); it != from.end()) last_[request] = it->second;
  }

  std::map<uint64_t, int32_t> last_;  // request -> the count its buffer holds
};

// FAULT tree-parent-by-depth (vLLM #54080, comment): a node's parent is looked up by its depth,
// as the first node one level up, so a node under a later sibling continues from the wrong
// sibling's state.
class TreeParentByDepth : public Faulty<TreeParentByDepth> {
  std::vector<int8_t> tree_parents(const DraftTree& tree) const override {
    std::vector<int8_t> parents = tree.parents;
    for (int32_t i = 1; i < tree.nodes(); ++i)
      parents[size_t(i)] = int8_t(nodes_at_depth(tree, tree::depth(tree.parents.data(), i) - 1)[0]);
    return parents;
  }
};

// FAULT tree-contiguous-path (vLLM #55688): the accepted path is taken to be nodes 0..a-1, so the
// payload is replayed as the verify wrote it, in node order.
class TreeContiguousPath : public Faulty<TreeContiguousPath> {
  int32_t gathered_node(const DraftTree&, int32_t k) const override { return k; }
};

// FAULT tree-last-node-at-depth: the live state is taken from the last node at the accepted
// depth, the position a chain's index a-1 would name, not from the accepted node.
class TreeLastNodeAtDepth : public Faulty<TreeLastNodeAtDepth> {
  int32_t accepted_node(const DraftTree* tree, int32_t k, int32_t accepted) const override {
    if (tree != nullptr && k == accepted - 1) return nodes_at_depth(*tree, k).back();
    return path_node(tree, k);
  }
};

// FAULT accepted-clamped-to-conv (llama.cpp #28123, xllm #2249): the accepted count is clamped
// to the conv window's history, W-1 inputs, and the clamped count also picks the SSM state.
class AcceptedClampedToConv : public Faulty<AcceptedClampedToConv> {
  int32_t live_token(int32_t accepted, int32_t conv_history) const override {
    return std::min(accepted, conv_history) - 1;
  }
};

// FAULT final-state-only (llama.cpp #28466, Kimi-K3): rollback is enabled for a model whose graph
// stores only the final recurrent state (and conv windows), so only the last token's plane is
// written and a rollback to token a-1 < T-1 restores a plane no step of this verify wrote.
class FinalStateOnly : public Faulty<FinalStateOnly> {
  bool verify_keeps_state(int32_t j, int32_t tokens) const override { return j == tokens - 1; }
};

// FAULT tracks-never-written (SGLang #30862, Kimi Linear): the KDA backend called neither track
// path (after an extend, after a decode or verify), while the radix cache committed the track
// slots as snapshots.
class TracksNeverWritten : public Faulty<TracksNeverWritten> {
  int32_t snapshot_token(int32_t, int32_t) const override { return -1; }
  bool checkpoints_extend(int32_t, int32_t) const override { return false; }
};

// FAULT commit-skipped (SGLang #25883): the backend has no post-verify state update, and the
// commit is dropped without an error.
class CommitSkipped : public Faulty<CommitSkipped> {
  bool commits_verify() const override { return false; }
};

// FAULT short-chunk-no-checkpoint (SGLang #30938): the checkpoint of a prefill chunk is tied to
// the cache chunk (the page), and a chunk shorter than a page never takes one, even where it
// crosses a page boundary.
class ShortChunkNoCheckpoint : public Faulty<ShortChunkNoCheckpoint> {
  bool checkpoints_extend(int32_t tokens, int32_t page_size) const override {
    return tokens >= page_size;
  }
};

// FAULT chunk-end-as-boundary (vLLM #45477): the state a chunk ends with is stored in the slot
// of the boundary it crossed, though the chunk does not end on it.
class ChunkEndAsBoundary : public Faulty<ChunkEndAsBoundary> {
  int32_t extend_snapshot_after(int32_t, int32_t tokens) const override { return tokens; }
};

// FAULT prefill-from-stale-row (vllm-metal #488): a request prefilled from scratch (preempted
// for recompute, or new) keeps its slot's contents as the starting state.
class PrefillFromStaleRow : public Faulty<PrefillFromStaleRow> {
  bool prefill_starts_from_zero(int32_t tokens) const override { return false; }
};

// FAULT one-token-chunk-as-decode (vLLM #51483, Kimi Linear): a first chunk of one token, which
// has no initial state, is routed as a decode, and a decode reads its slot's state.
class OneTokenChunkAsDecode : public Faulty<OneTokenChunkAsDecode> {
  bool prefill_starts_from_zero(int32_t tokens) const override { return tokens != 1; }
};

// FAULT hit-not-restored (LMCache #4247): an external hit makes the scheduler skip the hit's
// tokens for every layer, but the connector restores attention KV only: the recurrent layers
// run the tokens after the hit from whatever their slot holds.
class HitNotRestored : public Faulty<HitNotRestored> {
  HitStart prefix_hit_start(const PrefixHit& hit, int32_t) const override {
    return {hit.working_row, hit.tokens};
  }
};

// FAULT prefill-in-verify-graph (vLLM #53051): a prefill chunk of 1 + num_spec tokens has the
// shape of a verify and is dispatched to the spec-decode graph, which keeps its states for a
// commit that a prefill never issues: nothing is written.
class PrefillInVerifyGraph : public Faulty<PrefillInVerifyGraph> {
  bool extend_writes_state(int32_t tokens, int32_t tokens_per_verify) const override {
    return tokens != tokens_per_verify;
  }
};

// FAULT backward-boundary-copy (vLLM #53505): the copy after a verify takes its source block as
// the running page's (cdiv(num_computed + num_scheduled, block_size) - 1) and its destination as
// the boundary's page; when the accepted tokens end exactly on a boundary that the drafts ran
// past (a < T), the destination is below the source and the boundary gets the running block's
// state, the one after the verify's first token.
class BackwardBoundaryCopy : public Faulty<BackwardBoundaryCopy> {
  int32_t boundary_column(int32_t snap, int32_t accepted, int32_t tokens) const override {
    return snap == accepted - 1 && accepted < tokens ? 0 : snap;
  }
};

// FAULT hit-column-by-attention-block (vLLM #55507, fixing #53142): a request added over a
// cached prefix seeds its running-state column as (num_computed_tokens - 1) // block_size with
// the scheduler's block size (cache_config.block_size, at most the state group's page), not the
// state group's page; the align pre-copy then reads whatever block the table holds at that
// column. The scheduler's block size here is vLLM's default, 16 tokens, or the page if smaller.
class HitColumnByAttnBlock : public Faulty<HitColumnByAttnBlock> {
  static constexpr int64_t kAttentionBlockSize = 16;
  int64_t hit_state_column(int64_t length, int32_t page_size) const override {
    return page_of_last_token(length, int32_t(std::min<int64_t>(kAttentionBlockSize, page_size)));
  }
};

// FAULT chunk-end-no-next-page (vLLM #57605): in align mode the allocator resets the tokens it
// allocates for to the main model's, dropping the lookahead the scheduler asked for. The worker's
// state column for a chunk that ends exactly on a page boundary, with lookahead past it, is the
// next page's, which the allocator did not materialise: its entry still names a recycled block,
// and the chunk's state goes there (PoolPolicy::kUnallocatedBlock). The next step chains from it.
class ChunkEndNoNextPage : public Faulty<ChunkEndNoNextPage> {
  bool chunk_end_has_block(int64_t end, int32_t page_size,
                           int32_t tokens_per_verify) const override {
    return tokens_per_verify == 1 || page_size <= 0 || end % page_size != 0;
  }
};

// What the prefix cache knows of the track rows, for the faults that look a snapshot up by its
// writer and length (the correct protocol reads only the row the trace names): which request
// left which length in which row, until the row is taken as a working row.
template <class Self>
class KnowsSnapshots : public Faulty<Self> {
 protected:
  // The row where the writer of `row`'s snapshot of `row_length` tokens left its snapshot of
  // `length` tokens, while the cache still holds it; none when `row` holds no such snapshot.
  std::optional<int32_t> sibling_snapshot(int32_t row, int64_t row_length, int64_t length) const {
    const auto hit = rows_.find(row);
    if (hit == rows_.end() || hit->second.second != row_length) return std::nullopt;
    const std::pair<uint64_t, int64_t> wanted = {hit->second.first, length};
    for (const auto& [r, held] : rows_) {
      if (held == wanted) return r;
    }
    return std::nullopt;
  }

 private:
  void snapshot_written(uint64_t request, int64_t length, int32_t row) override {
    rows_[row] = {request, length};
  }
  void working_row_taken(int32_t row) override { rows_.erase(row); }
  // A restored row holds the snapshot its slot was offloaded from, with that writer.
  void snapshot_offloaded(int32_t row, int32_t slot) override {
    copy_entry(rows_, row, slots_, slot);
  }
  void snapshot_restored(int32_t slot, int32_t row) override {
    copy_entry(slots_, slot, rows_, row);
  }
  using Writers = std::map<int32_t, std::pair<uint64_t, int64_t>>;  // (request, length) by index
  static void copy_entry(const Writers& from, int32_t src, Writers& to, int32_t dst) {
    const auto it = from.find(src);
    if (it == from.end()) {
      to.erase(dst);
    } else {
      to[dst] = it->second;
    }
  }

  Writers rows_;   // track row -> the request that wrote its snapshot, and the length
  Writers slots_;  // host slot -> the same, for the snapshot offloaded into it
};

// FAULT hit-keeps-lookahead-block (vLLM #45614): with EAGLE the coordinator drops a prefix hit's
// last block for the attention groups (the drafter recomputes it) but lets the Mamba group keep
// it: the request is scheduled from the shorter hit with the state of the next boundary, so the
// page between them is applied twice. The hit of `length` tokens reads the snapshot of
// length + page_size that the writer of `cow_src_row` left, while the cache still holds it.
class HitKeepsLookaheadBlock : public KnowsSnapshots<HitKeepsLookaheadBlock> {
  HitStart prefix_hit_start(const PrefixHit& hit, int32_t page_size) const override {
    return {sibling_snapshot(hit.cow_src_row, hit.length, hit.length + page_size)
                .value_or(hit.cow_src_row),
            hit.tokens};
  }
};

// FAULT hit-reapplies-last-token (vLLM #51102, #51094, #44599; LMCache #5249): a prompt that ends
// exactly on a cached boundary. The lookup stops one token short, so that the last prompt token
// is recomputed for its logits, but the connector restores the state of the whole boundary,
// which already holds that token: it is applied twice. Here: the first extend on a hit of
// `length` tokens that writes no snapshot (the cache holds the whole prompt) and whose hit's
// writer also left the state after all its tokens restores that one and runs its last token
// again.
class HitReappliesLastToken : public KnowsSnapshots<HitReappliesLastToken> {
  HitStart prefix_hit_start(const PrefixHit& hit, int32_t) const override {
    const std::optional<int32_t> whole =
        hit.tracks ? std::nullopt
                   : sibling_snapshot(hit.cow_src_row, hit.length, hit.length + hit.tokens);
    return whole ? HitStart{*whole, 1} : HitStart{hit.cow_src_row, hit.tokens};
  }
};

}  // namespace

std::unique_ptr<PolicyDecisions> make_policy_decisions(Fault fault) {
  switch (fault) {
    case Fault::kNoFlushOnRetract:
    case Fault::kRingDonateWithoutHistory:
      return std::make_unique<RetractWithoutMakingReal>();
    case Fault::kStaleFlushAfterReuse:
      return std::make_unique<StaleFlushAfterReuse>();
    case Fault::kDecodeReadsOldRow:
      return std::make_unique<DecodeReadsOldRow>();
    case Fault::kSnapshotPreAccept:
      return std::make_unique<SnapshotPreAccept>();
    case Fault::kSnapshotPostAccept:
      return std::make_unique<SnapshotPostAccept>();
    case Fault::kRetractNoSave:
      return std::make_unique<RetractNoSave>();
    case Fault::kVerifyAsExtend:
      return std::make_unique<VerifyAsExtend>();
    case Fault::kPaddingWritesRow:
      return std::make_unique<PaddingWritesRow>();
    case Fault::kStaleReplayControl:
    case Fault::kStaleRingCursor:
      return std::make_unique<StaleReplayControl>();
    case Fault::kConvSsmSplitCommit:
      return std::make_unique<ConvSsmSplitCommit>();
    case Fault::kRingSnapshotUnfolded:
      return std::make_unique<RingSnapshotUnfolded>();
    case Fault::kRingStaleAccepted:
      return std::make_unique<RingStaleAccepted>();
    case Fault::kTreeParentByDepth:
      return std::make_unique<TreeParentByDepth>();
    case Fault::kTreeContiguousPath:
      return std::make_unique<TreeContiguousPath>();
    case Fault::kTreeLastNodeAtDepth:
      return std::make_unique<TreeLastNodeAtDepth>();
    case Fault::kAcceptedClampedToConv:
      return std::make_unique<AcceptedClampedToConv>();
    case Fault::kCommitSkipped:
      return std::make_unique<CommitSkipped>();
    case Fault::kShortChunkNoCheckpoint:
      return std::make_unique<ShortChunkNoCheckpoint>();
    case Fault::kChunkEndAsBoundary:
      return std::make_unique<ChunkEndAsBoundary>();
    case Fault::kPrefillFromStaleRow:
      return std::make_unique<PrefillFromStaleRow>();
    case Fault::kOneTokenChunkAsDecode:
      return std::make_unique<OneTokenChunkAsDecode>();
    case Fault::kPrefillInVerifyGraph:
      return std::make_unique<PrefillInVerifyGraph>();
    case Fault::kPaddingWrapsToLastRow:
      return std::make_unique<PaddingWrapsToLastRow>();
    case Fault::kBackwardBoundaryCopy:
      return std::make_unique<BackwardBoundaryCopy>();
    case Fault::kHitKeepsLookaheadBlock:
      return std::make_unique<HitKeepsLookaheadBlock>();
    case Fault::kHitColumnByAttnBlock:
      return std::make_unique<HitColumnByAttnBlock>();
    case Fault::kChunkEndNoNextPage:
      return std::make_unique<ChunkEndNoNextPage>();
    case Fault::kHitNotRestored:
      return std::make_unique<HitNotRestored>();
    case Fault::kRestoreReadEarly:
      return std::make_unique<RestoreReadEarly>();
    case Fault::kHandoffConvOneBlock:
      return std::make_unique<HandoffConvOneBlock>();
    case Fault::kHitReappliesLastToken:
      return std::make_unique<HitReappliesLastToken>();
    case Fault::kFinalStateOnly:
      return std::make_unique<FinalStateOnly>();
    case Fault::kTracksNeverWritten:
      return std::make_unique<TracksNeverWritten>();
    case Fault::kNone:
    case Fault::kDiscardedCountRead:
    case Fault::kCountZeroFlatIndex:
    case Fault::kCountsReordered:
    case Fault::kInflightWriteAfterReuse:
    case Fault::kSnapshotBeforeWrite:
    case Fault::kAdvancedLength:
    case Fault::kPaddingParkedSlots:
    case Fault::kStaleCommitMapping:
      return std::make_unique<PolicyDecisions>();
  }
  SPECSTATE_ASSERT(false, "unknown Fault");
}

}  // namespace specstate
