#include "core/strategy/fault.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/suggest.h"

namespace specstate {
namespace {

using K = StrategyKind;

// The strategies that run draft trees, those whose verify keeps states by `mode` when given.
std::vector<K> tree_strategies(std::optional<VerifyMode> mode = std::nullopt) {
  std::vector<K> kinds = strategies_running(/*tree_nodes=*/1);
  if (mode) std::erase_if(kinds, [&](K k) { return strategy_info(k).verify_mode != *mode; });
  return kinds;
}

std::vector<FaultInfo> make_faults() {
  const std::vector<K> all = all_strategies();
  return {
      {Fault::kNoFlushOnRetract,
       "no-flush-on-retract",
       "inline retract without the draft->working flush (tokenspeed #159)",
       "retract swaps out the working row while the live state sits in a draft row",
       {K::kInline}},
      {Fault::kStaleFlushAfterReuse,
       "stale-flush-after-reuse",
       "draft->working flush on a later step with the previous batch (tokenspeed #159 review)",
       "the flush at finish/retract is deferred to the next step and then copies into a row "
       "that was freed and handed to another request",
       {K::kInline}},
      {Fault::kDecodeReadsOldRow,
       "decode-reads-old-row",
       "step without drafts after verify(a >= 2) reads the old conv column (vLLM #40875)",
       "a decode step reads index 0 of the last verify (inline: the working row; window, paged: "
       "conv offset 0) instead of the live index a-1",
       {K::kInline, K::kWindow, K::kPaged}},
      {Fault::kSnapshotPreAccept, "snapshot-pre-accept",
       "snapshot boundary decided from the pre-accept length (SGLang #37817)",
       "a verify only sees a page boundary reached by its first token; later boundaries are "
       "missed and the track row keeps what it held",
       all},
      {Fault::kSnapshotPostAccept, "snapshot-post-accept",
       "prefix snapshot taken after accept, not at the boundary (vLLM #43559, SGLang #37817)",
       "the track row gets the state after the last accepted token instead of the boundary "
       "token's",
       all},
      {Fault::kRetractNoSave, "retract-no-save",
       "retract frees the slot without saving the state (SGLang #35957)",
       "retract saves nothing; resume continues from whatever the new working row holds", all},
      {Fault::kVerifyAsExtend, "verify-as-extend",
       "target-verify mistaken for an extend (tokenspeed #506)",
       "a verify resets its input state to zeros before running", all},
      {Fault::kPaddingWritesRow, "padding-writes-row",
       "CUDA-graph padding rows write a real row (SGLang #17404)",
       "padding tasks read and write scheduler row 0 instead of no row", all},
      {Fault::kStaleReplayControl,
       "stale-replay-control",
       "slot reuse without resetting per-slot replay control (TRT-LLM #14509)",
       "a new request inherits the pending-replay count and payload slot its request row's "
       "last occupant left",
       {K::kDeferred}},
      {Fault::kConvSsmSplitCommit,
       "conv-ssm-split-commit",
       "conv and SSM committed for different a (partial-accept rollback of SSM only)",
       "the scatter commit copies the SSM of token a-1 but the conv window of token T-1",
       {K::kScatter}},
      {Fault::kRingDonateWithoutHistory,
       "ring-donate-without-history",
       "donating a slot copies the checkpoint but not the replay ring (SGLang #37837)",
       "retract saves the checkpoint without folding the history; the request resumes with its "
       "old cursors and replays its new request row's ring",
       {K::kRing}},
      {Fault::kStaleRingCursor,
       "stale-ring-cursor",
       "slot reuse without resetting the ring cursors (the ring analogue of TRT-LLM #14509)",
       "a new request inherits the cache_base and hist_len its request row's last occupant left "
       "and replays that history",
       {K::kRing}},
      {Fault::kRingSnapshotUnfolded,
       "ring-snapshot-unfolded",
       "prefix snapshot published from an unfolded checkpoint (the ring analogue of vLLM #43559)",
       "a snapshot inside a verify replays the new tokens from the checkpoint but not the "
       "history before them",
       {K::kRing}},
      {Fault::kRingStaleAccepted,
       "ring-stale-accepted",
       "a discarded step commits accepted = 0 or a stale count (vLLM #51508)",
       "the ring's commit adds the accepted count of the request's previous step (0 before its "
       "first) to hist_len instead of this step's",
       {K::kRing}},
      {Fault::kTreeParentByDepth, "tree-parent-by-depth",
       "a tree node's parent resolved by depth, not by index (vLLM #54080, comment)",
       "each node continues from the first node one level up, so a node under a later sibling "
       "continues from the wrong sibling's state",
       tree_strategies()},
      {Fault::kTreeContiguousPath, "tree-contiguous-path",
       "the accepted path of a tree replayed as if contiguous (vLLM #55688)",
       "the accepted tokens are taken to be nodes 0..a-1 of the payload the verify wrote, not "
       "the path's nodes",
       tree_strategies(VerifyMode::kPayload)},
      {Fault::kTreeLastNodeAtDepth, "tree-last-node-at-depth",
       "the live state taken from the last node at the accepted depth, not the accepted node",
       "after a tree verify the live state is the state of the last node at depth a-1 (where a "
       "chain's token a-1 would be), not of the accepted node",
       tree_strategies(VerifyMode::kStateRows)},
      {Fault::kAcceptedClampedToConv,
       "accepted-clamped-to-conv",
       "the accepted count clamped to the conv history selects the SSM state too (llama.cpp "
       "#28123, xllm #2249)",
       "after a verify the live state is taken at index min(a, W-1) - 1, the bound of the conv "
       "window's history, instead of a - 1: a verify that accepts more than W-1 tokens leaves "
       "its request on an earlier token's state",
       {K::kInline, K::kWindow, K::kPaged}},
      {Fault::kCommitSkipped,
       "commit-skipped",
       "a backend without the post-verify state update skips the commit silently (SGLang "
       "#25883)",
       "the commit after the verify (scatter: the copy of token a-1's state; replay: the replay "
       "of the a accepted tokens) is never issued, so the working row keeps the state before "
       "the verify",
       {K::kScatter, K::kReplay}},
      {Fault::kShortChunkNoCheckpoint, "short-chunk-no-checkpoint",
       "a prefill chunk shorter than the cache chunk is never checkpointed (SGLang #30938)",
       "an extend of fewer tokens than a page writes none of the snapshots of the page "
       "boundaries it crosses, so their track rows keep what they held",
       all},
      {Fault::kChunkEndAsBoundary, "chunk-end-as-boundary",
       "a chunk-end state that is not page-aligned is stored as a boundary state (vLLM #45477)",
       "an extend that crosses a page boundary writes the state after its last token into the "
       "boundary's track row, not the state after the boundary token",
       all},
      {Fault::kPrefillFromStaleRow, "prefill-from-stale-row",
       "a request re-prefilled from scratch starts from the stale state left in its slot "
       "(vllm-metal #488)",
       "the first extend of a sequence without a prefix hit starts from what its working row "
       "holds, a previous occupant's state, instead of the zero state",
       all},
      {Fault::kOneTokenChunkAsDecode, "one-token-chunk-as-decode",
       "a stateless one-token first chunk treated as a decode reads the previous owner's state "
       "(vLLM #51483, Kimi Linear)",
       "the first extend of a sequence without a prefix hit starts from the zero state unless it "
       "has one token: that one runs as a decode, from what its working row holds",
       all},
      {Fault::kPaddingWrapsToLastRow, "padding-wraps-to-last-row",
       "a kernel indexes a padding entry's -1 from the end: the pool's last slot (FlashInfer "
       "#5042)",
       "padding tasks read and write the pool's last row (and last payload slot) instead of no "
       "row",
       all},
      {Fault::kPrefillInVerifyGraph, "prefill-in-verify-graph",
       "a prefill of 1 + num_spec tokens dispatched to the spec-decode CUDA graph, its state "
       "writes skipped (vLLM #53051)",
       "an extend of exactly T tokens, the shape of a verify, runs in the verify's graph, which "
       "writes no state for it: the working row and the snapshot rows keep what they held",
       all},
      {Fault::kBackwardBoundaryCopy,
       "backward-boundary-copy",
       "align mode: the post-verify boundary copy's source is the running page's block when the "
       "accepted tokens end on a page boundary (vLLM #53505)",
       "a verify whose accepted tokens end exactly on a page boundary that its drafts ran past "
       "copies the boundary's state from the running page's block, the state after its first "
       "token, instead of from the boundary token's block",
       {K::kPaged}},
      {Fault::kHitColumnByAttnBlock,
       "hit-column-by-attention-block",
       "align mode: a request added over a cached prefix seeds its running-state column with "
       "the scheduler's block size, not the state's page (vLLM #55507, #53142)",
       "the first extend on a prefix hit of L tokens reads its state from block-table column "
       "(L - 1) / 16 (vLLM's default block size; the page if smaller) instead of "
       "(L - 1) / page_size: another page's block, or block 0 (pool row 0), instead of the hit's "
       "snapshot",
       {K::kPaged}},
      {Fault::kChunkEndNoNextPage,
       "chunk-end-no-next-page",
       "align mode: the allocator drops the scheduler's lookahead, so a chunk ending exactly on a "
       "page boundary has no block at the column it writes (vLLM #57605)",
       "with drafts (T > 1), an extend whose tokens end exactly on a page boundary writes its "
       "state into a stale block-table entry, a recycled block (pool row 0, which the protocol "
       "may have given another request), and the next step reads it from there",
       {K::kPaged}},
      {Fault::kHitKeepsLookaheadBlock, "hit-keeps-lookahead-block",
       "with EAGLE, the Mamba group keeps the lookahead block of a prefix hit that the attention "
       "groups drop (vLLM #45614)",
       "a prefix hit of L tokens starts from the snapshot of L + page_size that the same writer "
       "left, so the page between the two boundaries is applied twice",
       all},
      {Fault::kHitNotRestored, "hit-not-restored",
       "an external prefix hit advances the computed tokens without restoring the recurrent "
       "state (LMCache #4247)",
       "the first extend of a sequence on a prefix hit of L tokens computes the tokens after L "
       "from what its working row holds, a previous occupant's state, instead of the hit's",
       all},
      {Fault::kHitReappliesLastToken, "hit-reapplies-last-token",
       "a prompt ending exactly on a cached boundary restores that boundary's state and recomputes "
       "its last token for the logits: the token is applied twice (vLLM #51102)",
       "the first extend on a prefix hit of L tokens whose writer also left the state after the "
       "extend's n tokens starts from that state and runs token L+n-1 again, instead of running "
       "the n tokens from the hit's state",
       all},
      {Fault::kFinalStateOnly,
       "final-state-only",
       "rollback enabled for a model that stores only the final recurrent state: a rejected "
       "draft restores a snapshot that was never written (llama.cpp #28466, Kimi-K3)",
       "a verify writes the state after its last token only, not one state per token (the "
       "rollback planes), and after accepting a < T tokens the live state is taken from token "
       "a-1's plane, which holds what an earlier step left there",
       {K::kInline, K::kWindow, K::kPaged}},
      {Fault::kTracksNeverWritten, "tracks-never-written",
       "a backend that never writes the track slots the radix cache commits: a prefix hit "
       "restores a never-written state (SGLang #30862, Kimi Linear)",
       "no extend and no verify writes the snapshots (track rows) the trace asks for, whatever "
       "their length, while the prefix cache registers them, so a hit starts from what the "
       "track row held",
       all},
      {Fault::kRestoreReadEarly, "restore-read-early",
       "the reader of a host-tier restore runs before the host-to-device transfer finishes: "
       "completion and reader count layers differently (SGLang #38866, HiCache with PP > 1)",
       "a restore's transfer has landed for the first half of the layers when the next event "
       "runs, the rest lands after it: that event, and a comparison at the restore's end, see "
       "the upper layers of the row as they were before the restore",
       all},
      {Fault::kHandoffConvOneBlock, "handoff-conv-one-block",
       "a prefill/decode handoff between TP degrees slices the conv state's q | k | v channels "
       "as one contiguous 1/tp block per rank (SGLang #30997)",
       "the receiving rank's conv window is gathered as the rank's contiguous block of the "
       "concatenated [q | k | v] channels of the whole model, not its heads' slice of each "
       "group: only rank 0's q channels are right (the SSM is sliced by value heads, right)",
       all},
      {Fault::kDiscardedCountRead,
       "discarded-count-read",
       "a discarded async step leaves accepted = 0, and index -1 is read (vLLM #51508)",
       "a request with no step in flight resolves its live row as rows[count - 1] from the count "
       "its request row holds: 0 left by the previous occupant's discarded step, so index -1, its "
       "last draft row",
       {K::kInline},
       true},
      {Fault::kCountZeroFlatIndex,
       "count-zero-flat-index",
       "a stale count of 0 read by the GDN kernel as a flat index (vLLM #48475)",
       "a reused request row's count is reset, but a discarded step's 0 lands after the reset, "
       "and index -1 is loaded at flat offset entry * T - 1 of the step's index table: the "
       "previous batch entry's last draft row, another request's state",
       {K::kInline},
       true},
      {Fault::kCountsReordered, "counts-reordered",
       "accepted counts copied before the next step reorders the batch (vLLM #53919)",
       "the host applies the in-flight step's counts by the batch positions of the step it "
       "prepared next, so after a reorder each request takes another request's count",
       all, true},
      {Fault::kInflightWriteAfterReuse, "inflight-write-after-reuse",
       "a request finished at step N is already in N+1, which overwrites its slot's next owner "
       "(vLLM #45096)",
       "the writes of a discarded entry land after the step that follows, when the host has "
       "freed the finished request's rows and given them to another request",
       all, true},
      {Fault::kSnapshotBeforeWrite, "snapshot-before-write",
       "a snapshot taken before the forward pass that writes it (SGLang #24221)",
       "a step's snapshot copies and replays are enqueued ahead of its verify, so they copy what "
       "the rows and payload held before the step",
       all, true},
      {Fault::kAdvancedLength, "advanced-length",
       "results of batch A read a length that batch B's preparation already advanced (SGLang "
       "#29792)",
       "the host applies a step's accepted counts to the length the next step's preparation "
       "already advanced by the tokens it scheduled",
       all, true},
      {Fault::kPaddingParkedSlots, "padding-parked-slots",
       "padding dummies share slots with requests the overlap scheduler parked (TRT-LLM #13151)",
       "a step's padding task reads and writes the working row of a request that is in the "
       "in-flight step but not in this one, whose slot looks free",
       all, true},
      {Fault::kStaleCommitMapping,
       "stale-commit-mapping",
       "with pipeline parallelism and speculative decoding the post-verify copy's batch-row "
       "mapping is pp_size steps old: states copied into other requests' blocks (vLLM #55951)",
       "a step's commits (scatter's copy of token a-1's state, the replay strategy's commit "
       "replay) write entry k's state into the working row that entry k of the batch d steps "
       "before had (d: the steps in flight)",
       {K::kScatter, K::kReplay},
       true},
  };
}

}  // namespace

const std::vector<FaultInfo>& all_faults() {
  static const std::vector<FaultInfo> faults = make_faults();
  return faults;
}

const FaultInfo& fault_info(Fault fault) {
  for (const FaultInfo& info : all_faults()) {
    if (info.fault == fault) return info;
  }
  SPECSTATE_ASSERT(false, "fault_info(kNone) or an unlisted Fault");
}

Fault parse_fault(std::string_view name) {
  std::string known;
  std::vector<std::string_view> names;
  for (const FaultInfo& info : all_faults()) {
    if (info.name == name) return info.fault;
    known += (known.empty() ? "" : ", ") + std::string(info.name);
    names.push_back(info.name);
  }
  throw InputError("unknown fault '" + std::string(name) + "'" + did_you_mean(name, names) +
                   " (known: " + known + ")");
}

bool fault_concerns(Fault fault, StrategyKind kind) {
  if (fault == Fault::kNone) return false;
  const std::vector<StrategyKind>& kinds = fault_info(fault).strategies;
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

}  // namespace specstate
