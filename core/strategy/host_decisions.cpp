#include "core/strategy/host_decisions.h"

#include <algorithm>

#include "core/errors.h"

namespace specstate {
namespace {

// `verify`'s mode and padding, without its tasks.
VerifyCall with_no_tasks(const VerifyCall& verify) {
  VerifyCall call;
  call.mode = verify.mode;
  call.padding_rows = verify.padding_rows;
  return call;
}

// The inline strategy's output row of index k (working row, then the draft rows), k taken modulo
// the T outputs as an engine's tensor index takes -1.
int32_t inline_row(const StrategyLayout& l, const LiveState& s, int32_t k) {
  const int32_t T = l.config.tokens_per_verify;
  k = (k % T + T) % T;
  return k == 0 ? s.working_row : l.draft_row(s.req_row, k - 1);
}

// FAULT counts-reordered (vLLM #53919): the non-blocking copy of the counts is read after the
// next step condensed its batch, so each request takes the count of the entry that now sits at
// its batch position.
class CountsReordered : public HostDecisions {
  int32_t applied_count(std::span<const VerifyOp> in_flight, size_t k,
                        std::span<const VerifyOp> next) const override {
    const int32_t own = in_flight[k].accepted;
    const auto it = std::find_if(next.begin(), next.end(), [&](const VerifyOp& o) {
      return o.request == in_flight[k].request;
    });
    const size_t position = size_t(it - next.begin());
    if (it == next.end() || position >= in_flight.size() || own == 0) return own;
    return in_flight[position].accepted > 0 ? in_flight[position].accepted : own;
  }
};

// FAULT advanced-length (SGLang #29792): the results are applied to the length the next step's
// preparation already advanced by the tokens it scheduled.
class AdvancedLength : public HostDecisions {
  int64_t length_error(int32_t count, int32_t scheduled) const override {
    return count > 0 ? scheduled : 0;
  }
};

// FAULT discarded-count-read (vLLM #51508): the live row of a request with no step in flight is
// resolved on the device too, as rows[count - 1] of its request row, from a count the row's
// previous occupant left: 0 after its discarded step, and index -1 is the last draft row.
class DiscardedCountRead : public HostDecisions {
  void entry_tasks(VerifyCall& verify, std::span<const VerifyOp> batch,
                   const HostView& host) const override {
    const StrategyLayout& layout = host.truth.layout();
    VerifyCall expanded = with_no_tasks(verify);
    for (size_t t = 0; t < verify.tasks.size(); ++t) {
      const uint64_t r = verify.requests[t];
      const LiveState& s = host.truth.live(r);
      const auto pub = host.published.find(s.req_row);
      if (!verify.tasks[t].guard.is_none() || pub == host.published.end() ||
          pub->second.first == r) {
        expanded.add(verify.tasks[t], r);
        continue;
      }
      for (int32_t c = 0; c <= layout.config.tokens_per_verify; ++c) {
        VerifyTask task = verify.tasks[t];
        task.from = StateLoc::at(inline_row(layout, s, c - 1));
        task.guard = {s.req_row, c};
        expanded.add(task, r);
      }
    }
    verify = std::move(expanded);
  }
};

// FAULT count-zero-flat-index (vLLM #48475, #50021): the count table is reset when a request takes
// a row (vLLM #48132), but a discarded step's 0 lands after the reset, and the GDN kernel loads
// the state index at flat offset entry * T + (0 - 1) of the step's [entries, T] index table (T
// columns for a verify, 1 for a decode): the previous entry's last column, another request's
// draft row (its working row for a decode). At entry 0 the load falls before
// the table (the engine's illegal memory access); the model, which cannot fault a device, leaves
// that entry's read as planned.
class CountZeroFlatIndex : public HostDecisions {
  void entry_tasks(VerifyCall& verify, std::span<const VerifyOp> batch,
                   const HostView& host) const override {
    for (size_t k = 1; k < batch.size(); ++k) {
      const LiveState& s = host.truth.live(batch[k].request);
      const auto pub = host.published.find(s.req_row);
      if (pub == host.published.end() || pub->second.first == batch[k].request ||
          pub->second.second != 0)
        continue;
      const LiveState& previous = host.truth.live(batch[k - 1].request);
      for (size_t t = 0; t < verify.tasks.size(); ++t) {
        if (verify.requests[t] != batch[k].request) continue;
        // The table has a column per token of the step: T for a verify, 1 for a decode.
        const int32_t last_column = verify.tasks[t].tokens.count - 1;
        verify.tasks[t].from = StateLoc::at(inline_row(host.truth.layout(), previous, last_column));
      }
    }
  }
};

// FAULT padding-parked-slots (TRT-LLM #13151): the graph's padding dummies are given the slot of
// a request the overlap scheduler parked (in the step still in flight, not in this one), which
// looks free because its request is not in the batch.
class PaddingParkedSlots : public HostDecisions {
  void padding_task(VerifyTask& pad, std::span<const VerifyOp> batch, bool decode, VerifyMode mode,
                    const HostView& host) const override {
    const StrategyLayout& layout = host.truth.layout();
    for (const VerifyOp& op : host.in_flight) {
      const bool parked = std::none_of(batch.begin(), batch.end(),
                                       [&](const VerifyOp& b) { return b.request == op.request; });
      if (!parked || !host.truth.has(op.request)) continue;
      const LiveState& s = host.truth.live(op.request);
      if (s.retracted || s.discarded) continue;
      pad.tokens = {kPaddingRequest, 0, decode ? 1 : layout.config.tokens_per_verify};
      pad.from = StateLoc::at(s.working_row);
      pad.out_rows[0] = s.working_row;
      if (mode == VerifyMode::kPayload) pad.payload_slot = layout.payload_slot(s.req_row, 0);
      return;
    }
  }
};

// FAULT inflight-write-after-reuse (vLLM #45096): the writes of a discarded entry (its request
// finished at the previous step) are still in flight when the host frees its rows; they land
// with the next step. A task that writes nothing keeps the entry's place in the call.
class InflightWriteAfterReuse : public HostDecisions {
  void hold_writes(std::span<const VerifyOp> batch, VerifyCall& verify) override {
    VerifyCall kept = with_no_tasks(verify);
    held_ = with_no_tasks(verify);
    held_.padding_rows = 0;
    for (size_t t = 0; t < verify.tasks.size(); ++t) {
      const uint64_t r = verify.requests[t];
      const bool discarded = std::any_of(batch.begin(), batch.end(), [&](const VerifyOp& o) {
        return o.request == r && o.accepted == 0;
      });
      if (!discarded) {
        kept.add(verify.tasks[t], r);
        continue;
      }
      held_.add(verify.tasks[t], r);
      VerifyTask nothing;
      nothing.tokens = verify.tasks[t].tokens;
      kept.add(nothing, r);
    }
    verify = std::move(kept);
  }
  Plan writes_landing_now() override {
    if (held_.tasks.empty()) return {};
    return {std::exchange(held_, {})};
  }

  VerifyCall held_;  // the last step's held writes
};

// FAULT snapshot-before-write (SGLang #24221): the snapshot copies, prepared with the step, are
// enqueued ahead of the forward pass that writes what they copy.
class SnapshotBeforeWrite : public HostDecisions {
  bool snapshots_before_verify() const override { return true; }
};

}  // namespace

// FAULT stale-commit-mapping (vLLM #55951): with pipeline parallelism of d stages the post-verify
// copy takes its batch-row -> state mapping from the step d steps before (the last step of its
// pipeline slot), so entry k's accepted state is committed into the working row entry k had
// then: another request's, while its own keeps the state from before the step.
class StaleCommitMapping : public HostDecisions {
  void commit_rows(Plan& after_accept, std::span<const VerifyOp> batch,
                   const HostView& host) const override {
    auto retarget = [&](auto& call) {
      for (size_t t = 0; t < call.tasks.size(); ++t) {
        const auto it = std::find_if(batch.begin(), batch.end(), [&](const VerifyOp& op) {
          return op.request == call.requests[t];
        });
        const size_t k = size_t(it - batch.begin());
        if (it != batch.end() && k < host.lagged_rows.size())
          call.tasks[t].dst_row = host.lagged_rows[k];
      }
    };
    for (PlanCall& call : after_accept) {
      if (auto* copies = std::get_if<CopyCall>(&call)) retarget(*copies);
      if (auto* replays = std::get_if<ReplayCall>(&call)) retarget(*replays);
    }
  }
};

std::unique_ptr<HostDecisions> make_host_decisions(Fault fault) {
  switch (fault) {
    case Fault::kDiscardedCountRead:
      return std::make_unique<DiscardedCountRead>();
    case Fault::kCountZeroFlatIndex:
      return std::make_unique<CountZeroFlatIndex>();
    case Fault::kCountsReordered:
      return std::make_unique<CountsReordered>();
    case Fault::kInflightWriteAfterReuse:
      return std::make_unique<InflightWriteAfterReuse>();
    case Fault::kSnapshotBeforeWrite:
      return std::make_unique<SnapshotBeforeWrite>();
    case Fault::kAdvancedLength:
      return std::make_unique<AdvancedLength>();
    case Fault::kStaleCommitMapping:
      return std::make_unique<StaleCommitMapping>();
    case Fault::kPaddingParkedSlots:
      return std::make_unique<PaddingParkedSlots>();
    case Fault::kNone:
    case Fault::kNoFlushOnRetract:
    case Fault::kStaleFlushAfterReuse:
    case Fault::kDecodeReadsOldRow:
    case Fault::kSnapshotPreAccept:
    case Fault::kSnapshotPostAccept:
    case Fault::kRetractNoSave:
    case Fault::kVerifyAsExtend:
    case Fault::kPaddingWritesRow:
    case Fault::kStaleReplayControl:
    case Fault::kConvSsmSplitCommit:
    case Fault::kRingDonateWithoutHistory:
    case Fault::kStaleRingCursor:
    case Fault::kRingSnapshotUnfolded:
    case Fault::kRingStaleAccepted:
    case Fault::kTreeParentByDepth:
    case Fault::kTreeContiguousPath:
    case Fault::kTreeLastNodeAtDepth:
    case Fault::kAcceptedClampedToConv:
    case Fault::kCommitSkipped:
    case Fault::kShortChunkNoCheckpoint:
    case Fault::kChunkEndAsBoundary:
    case Fault::kPrefillFromStaleRow:
    case Fault::kOneTokenChunkAsDecode:
    case Fault::kPrefillInVerifyGraph:
    case Fault::kPaddingWrapsToLastRow:
    case Fault::kBackwardBoundaryCopy:
    case Fault::kHitKeepsLookaheadBlock:
    case Fault::kHitColumnByAttnBlock:
    case Fault::kChunkEndNoNextPage:
    case Fault::kHitNotRestored:
    case Fault::kHitReappliesLastToken:
    case Fault::kFinalStateOnly:
    case Fault::kTracksNeverWritten:
    case Fault::kRestoreReadEarly:
    case Fault::kHandoffConvOneBlock:
      return std::make_unique<HostDecisions>();
  }
  SPECSTATE_ASSERT(false, "unknown Fault");
}

}  // namespace specstate
