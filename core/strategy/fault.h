// Fault injection: known engine bugs, each modelled as one wrong protocol decision in the pool
// policy (core/strategy/pool_policy.h), never as a random corruption. `specstate replay
// --inject NAME` runs a fault in every lane whose strategy it concerns; the simulator must
// then report a divergence or an ownership violation where the bug first shows
// (docs/failure-classes.md has each class, the public bug, a trace and the diagnostic).
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "core/strategy/strategy.h"

namespace specstate {

enum class Fault : uint8_t {
  kNone,
  kNoFlushOnRetract,          // inline: retract saves the working row, not the live draft row
  kStaleFlushAfterReuse,      // inline: the finish/retract flush runs at the next step, stale
  kDecodeReadsOldRow,         // inline, window: decode after verify(a >= 2) reads index 0
  kSnapshotPreAccept,         // all: boundary checked with the pre-accept length (missed)
  kSnapshotPostAccept,        // all: snapshot of the post-accept state, not the boundary token
  kRetractNoSave,             // all: retract frees the row unsaved, resume takes the row as is
  kVerifyAsExtend,            // all: a verify starts from the zero state
  kPaddingWritesRow,          // all: padding tasks read and write row 0
  kStaleReplayControl,        // deferred: a reused request row keeps its pending-replay control
  kConvSsmSplitCommit,        // scatter: SSM committed for a, conv for all T tokens
  kRingDonateWithoutHistory,  // ring: a moved slot takes the checkpoint, not the ring
  kStaleRingCursor,           // ring: a reused request row keeps its cursors
  kRingSnapshotUnfolded,      // ring: a snapshot from the checkpoint without the history
  kRingStaleAccepted,         // ring: the commit uses the previous step's accepted count
  kTreeParentByDepth,         // trees: a node's parent looked up by depth (a sibling's state)
  kTreeContiguousPath,        // trees, payload: nodes 0..a-1 replayed instead of the path
  kTreeLastNodeAtDepth,       // trees, state rows: live state from the last node at depth a-1
  kAcceptedClampedToConv,     // inline, window: the live index min(a, W-1) - 1, not a - 1
  kCommitSkipped,             // scatter, replay: the commit after the verify never runs
  kShortChunkNoCheckpoint,    // all: an extend shorter than a page writes no snapshot
  kChunkEndAsBoundary,        // all: an extend's snapshot takes its last token's state
  kPrefillFromStaleRow,       // all: a sequence's first extend starts from its row's old state
  kOneTokenChunkAsDecode,     // all: a one-token first chunk starts from its row's old state
  kPaddingWrapsToLastRow,     // all: padding index -1 wraps to the pool's last row and slot
  kPrefillInVerifyGraph,      // all: an extend of exactly T tokens writes no state
  kBackwardBoundaryCopy,      // paged: a boundary the drafts ran past copied from block c
  kHitKeepsLookaheadBlock,    // all: a prefix hit starts from the next boundary's snapshot
  kHitNotRestored,            // all: a prefix hit starts from its row's old state
  kHitReappliesLastToken,     // all: a hit on the whole prompt's state reruns its last token
  kFinalStateOnly,            // inline, window, paged: a verify keeps only its last token's state
  kTracksNeverWritten,        // all: no step writes the snapshots the prefix cache registers
  kRestoreReadEarly,          // all: the next event runs before a restore's upper layers land
  kHitColumnByAttnBlock,      // paged: a hit's state column counted in attention blocks
  kChunkEndNoNextPage,        // paged: a chunk ending on a boundary writes an unallocated block
  kHandoffConvOneBlock,       // all: a PD handoff cuts conv q | k | v as one block per rank
  // Overlap scheduling (core/strategy/host_scheduler.h): wrong decisions of the host side.
  kDiscardedCountRead,       // inline: a reused row's count left by a discarded step (-1)
  kCountZeroFlatIndex,       // inline: that count's -1 read flat: the previous entry's row
  kCountsReordered,          // all: late counts applied by the next batch's positions
  kInflightWriteAfterReuse,  // all: a finished request's in-flight writes land after reuse
  kSnapshotBeforeWrite,      // all: a step's snapshots enqueued before its forward pass
  kAdvancedLength,           // all: results applied to the length the next step advanced
  kPaddingParkedSlots,       // all: padding dummies take a parked request's slot
  kStaleCommitMapping,       // scatter, replay: commits by the rows of the batch d steps back
};

struct FaultInfo {
  Fault fault = Fault::kNone;
  std::string_view name;  // as on the command line
  std::string_view bug;   // the public bug it models
  std::string_view what;  // the wrong decision, one line
  std::vector<StrategyKind> strategies;
  bool overlap = false;  // a fault of overlap scheduling (needs an overlap lane)
};

// Every fault but kNone, in declaration order.
const std::vector<FaultInfo>& all_faults();
const FaultInfo& fault_info(Fault fault);
// InputError for an unknown name (the message lists the known ones).
Fault parse_fault(std::string_view name);
bool fault_concerns(Fault fault, StrategyKind kind);

}  // namespace specstate
