#include "core/strategy/pool_policy.h"

#include <array>
#include <iterator>
#include <set>
#include <string>
#include <utility>

#include "core/errors.h"

namespace specstate {
namespace {

std::string req_name(uint64_t request) {
  return "request " + std::to_string(request);
}

// Token index (0-based, inside a step starting at `length`) after which a snapshot is taken.
int32_t snapshot_token(const Snapshot& snap, int64_t length, int32_t accepted, uint64_t request) {
  const int64_t index = snap.length - length - 1;
  if (index < 0 || index >= accepted) {
    throw InputError(req_name(request) + ": snapshot of length " + std::to_string(snap.length) +
                     " is not inside the " + std::to_string(accepted) +
                     " accepted tokens after length " + std::to_string(length));
  }
  return int32_t(index);
}

// The pending tokens of `s` (deferred: one step's; ring: the history) replayed before a verify,
// committed to `commit_row` or, with kNoRow, only continued from.
PendingReplay pending_replay(const LiveState& s, int32_t commit_row) {
  return {s.pending_slot, s.pending, commit_row, s.pending_first, s.pending_rounds};
}

// The pending tokens of `s` replayed from `from` into `dst_row`.
ReplayTask pending_task(const LiveState& s, StateLoc from, int32_t dst_row) {
  return {from, s.pending_slot, s.pending, dst_row, s.pending_first, s.pending_rounds};
}

}  // namespace

PoolPolicy::PoolPolicy(StrategyKind kind, const PoolConfig& config, Fault fault)
    : layout_(make_layout(kind, config)), fault_(fault), decisions_(fault) {
  if (fault != Fault::kNone && !fault_concerns(fault, kind)) {
    throw InputError("fault '" + std::string(fault_info(fault).name) + "' does not concern the " +
                     std::string(to_string(kind)) + " strategy");
  }
}

const LiveState& PoolPolicy::live(uint64_t request) const {
  const LiveState* s = table_.find(request);
  if (s == nullptr) throw InputError(req_name(request) + " does not exist");
  return *s;
}

LiveState& PoolPolicy::running(uint64_t request, const char* op) {
  const LiveState* found = table_.find(request);
  if (found == nullptr)
    throw InputError(std::string(op) + ": " + req_name(request) + " does not exist");
  if (found->retracted)
    throw InputError(std::string(op) + ": " + req_name(request) + " is retracted");
  if (found->discarded) {
    throw InputError(std::string(op) + ": " + req_name(request) +
                     ": its last step was discarded (accepted 0), so it can only finish");
  }
  return *table_.find_mutable(request);
}

// The pending tokens are in the working row now. The ring's cursor moves past them
// (cache_base += hist_len); deferred's buffer is free.
void PoolPolicy::consume_pending(LiveState& s) const {
  if (layout_.kind == StrategyKind::kRing) {
    s.pending_first = (s.pending_first + s.pending) % layout_.config.ring.slots;
  } else {
    s.pending_slot = kNoRow;
  }
  s.pending = 0;
  s.pending_rounds = 0;
}

int32_t PoolPolicy::running_row(const LiveState& s) const {
  return layout_.kind == StrategyKind::kPaged ? s.blocks[0] : s.working_row;
}

int64_t PoolPolicy::running_page(int64_t length, int32_t tokens) const {
  const int32_t page_size = layout_.config.page_size;
  return page_size > 0 ? page_of_last_token(length + tokens, page_size) : 0;
}

void PoolPolicy::place_pages(LiveState& s) const {
  s.blocks.fill(kNoRow);
  s.blocks[0] = s.working_row;
  for (int32_t i = 1; i < layout_.config.tokens_per_verify; ++i)
    s.blocks[size_t(i)] = layout_.paged_block(s.req_row, i - 1);
}

void PoolPolicy::map_pages(LiveState& s, int64_t page) const {
  const int32_t T = layout_.config.tokens_per_verify;
  const int32_t held = s.blocks[0];
  std::array<int32_t, kMaxVerifyTokens> next;
  next.fill(kNoRow);
  std::set<int32_t> taken = {held};
  for (int32_t i = 0; i < T; ++i) {
    const int64_t old = page + i - s.page;
    if (old >= 0 && old < T) taken.insert(next[size_t(i)] = s.blocks[size_t(old)]);
  }
  int32_t candidate = -1;  // -1: the working row; j >= 0: the request row's paged block j
  auto block = [&](int32_t c) { return c < 0 ? s.working_row : layout_.paged_block(s.req_row, c); };
  for (int32_t i = 0; i < T; ++i) {
    if (next[size_t(i)] != kNoRow) continue;
    while (taken.count(block(candidate)) > 0)
      ++candidate;
    SPECSTATE_ASSERT(candidate < T, "a request's T+1 blocks hold its held block and T pages");
    taken.insert(next[size_t(i)] = block(candidate));
  }
  s.page = page;
  s.blocks = next;
}

void PoolPolicy::read_hit_through_table(const LiveState& s, int64_t length,
                                        PrefillTask& task) const {
  const int32_t page_size = layout_.config.page_size;
  if (page_size <= 0) return;  // one page: the hit's block is the only column below the running one
  const int64_t column = decisions_->hit_state_column(length, page_size);
  if (column == page_of_last_token(length, page_size)) return;
  const int64_t i = column - s.page;
  const bool in_window = i >= 0 && i < layout_.config.tokens_per_verify;
  task.from = StateLoc::at(in_window ? s.blocks[size_t(i)] : kUnallocatedBlock);
}

void PoolPolicy::move_page(uint64_t request, LiveState& s, int32_t tokens, CopyCall& moves) const {
  const int64_t page = running_page(s.length, tokens);
  if (page == s.page) return;
  map_pages(s, page);
  moves.add({s.loc, s.blocks[0]}, request);
  s.loc = StateLoc::at(s.blocks[0]);
}

void PoolPolicy::make_real(uint64_t request, LiveState& s, Plan& plan) {
  const StateLoc working = StateLoc::at(s.working_row);
  if (s.pending > 0) {
    plan.push_back(call_of<ReplayCall>(pending_task(s, working, s.working_row), request));
    consume_pending(s);
  } else if (s.loc != working) {
    decisions_->flush(call_of<CopyCall>(RowCopy{s.loc, s.working_row}, request), plan);
  }
  s.loc = working;
  if (layout_.kind == StrategyKind::kPaged) place_pages(s);
}

int32_t PoolPolicy::snapshot_index(const VerifyOp& op, int64_t length) const {
  if (!op.snapshot) return -1;
  return decisions_->snapshot_token(snapshot_token(*op.snapshot, length, op.accepted, op.request),
                                    op.accepted);
}

int32_t PoolPolicy::accepted_node(const VerifyOp& op, int32_t k) const {
  return decisions_->accepted_node(op.tree ? &*op.tree : nullptr, k, op.accepted);
}

Plan PoolPolicy::extend(const ExtendOp& op) {
  Plan plan;
  PrefillTask task;
  task.tokens.request_id = op.request;
  task.tokens.count = op.tokens;
  if (op.tokens < 1) throw InputError("extend: " + req_name(op.request) + ": tokens must be >= 1");
  table_.compact(2 * LiveTable::kCompactAt);
  const LiveState* found = table_.find(op.request);
  // Check everything before the table changes: a refused operation leaves it as it was.
  if (found != nullptr) running(op.request, "extend");
  const int64_t start = found == nullptr ? op.prefix_len : found->length;
  for (const Snapshot& snap : op.snapshots) {
    if (snap.length - start < 1 || snap.length - start > op.tokens) {
      throw InputError("extend: " + req_name(op.request) + ": snapshot length " +
                       std::to_string(snap.length) + " is not inside this extend");
    }
  }
  LiveState* live = nullptr;
  if (found == nullptr) {
    LiveState s;
    s.req_row = op.req_row;
    s.working_row = op.working_row;
    s.length = op.prefix_len;
    if (layout_.kind == StrategyKind::kRing) s.pending_slot = layout_.payload_slot(op.req_row, 0);
    if (layout_.kind == StrategyKind::kPaged) {
      s.page = running_page(op.prefix_len, op.tokens);
      place_pages(s);
    }
    decisions_->take_request_row(s);
    decisions_->working_row_taken(op.working_row);
    task.from_zero = op.prefix_len == 0 && decisions_->prefill_starts_from_zero(op.tokens);
    if (op.prefix_len > 0) {
      const HitStart hit = decisions_->prefix_hit_start(
          {op.cow_src_row, op.working_row, op.prefix_len, op.tokens, !op.snapshots.empty()},
          layout_.config.page_size);
      task.from = StateLoc::at(hit.row);
      task.tokens.count = hit.tokens;  // the extend's last ones
      if (layout_.kind == StrategyKind::kPaged) read_hit_through_table(s, op.prefix_len, task);
    }
    if (op.prefix_len == 0 && !task.from_zero) task.from = StateLoc::at(op.working_row);
    live = &table_.set(op.request, s);
  } else {
    live = &running(op.request, "extend");
    if (live->pending > 0) make_real(op.request, *live, plan);
    task.from_zero = false;
    task.from = live->loc;
    // Paged: the chunk reads the live state where it is and writes its running page's block.
    if (layout_.kind == StrategyKind::kPaged) {
      const int64_t page = running_page(live->length, op.tokens);
      if (page != live->page) map_pages(*live, page);
    }
  }
  LiveState& s = *live;
  if (layout_.kind == StrategyKind::kPaged &&
      !decisions_->chunk_end_has_block(s.length + op.tokens, layout_.config.page_size,
                                       layout_.config.tokens_per_verify)) {
    s.blocks[0] = kUnallocatedBlock;
  }
  task.tokens.first_position = s.length + op.tokens - task.tokens.count;
  const bool writes = decisions_->extend_writes_state(op.tokens, layout_.config.tokens_per_verify);
  if (writes) task.writes.push_back({task.tokens.count, running_row(s)});
  if (writes && decisions_->checkpoints_extend(op.tokens, layout_.config.page_size)) {
    for (const Snapshot& snap : op.snapshots) {
      const int32_t after =
          decisions_->extend_snapshot_after(int32_t(snap.length - s.length), op.tokens);
      task.writes.push_back({after, snap.row});
    }
  }
  plan.push_back(call_of<PrefillCall>(task, op.request));
  for (const Snapshot& snap : op.snapshots)
    decisions_->snapshot_written(op.request, snap.length, snap.row);
  s.length += op.tokens;
  s.loc = StateLoc::at(running_row(s));
  return plan;
}

Plan PoolPolicy::verify(std::span<const VerifyOp> batch, int32_t padding) {
  return verify_parts(batch, padding).joined();
}

Plan PoolPolicy::decode(std::span<const VerifyOp> batch, int32_t padding) {
  return decode_parts(batch, padding).joined();
}

PoolPolicy::StepPlans PoolPolicy::verify_parts(std::span<const VerifyOp> batch, int32_t padding) {
  return step(batch, padding, layout_.config.tokens_per_verify, /*decode=*/false);
}

PoolPolicy::StepPlans PoolPolicy::decode_parts(std::span<const VerifyOp> batch, int32_t padding) {
  return step(batch, padding, 1, /*decode=*/true);
}

// Refuses a step before anything changes: unknown or retracted requests, a request twice in
// the batch, accepted lengths outside 1..tokens, snapshots outside the accepted tokens.
void PoolPolicy::check_step(std::span<const VerifyOp> batch, int32_t tokens, bool decode) {
  const char* op_name = decode ? "decode" : "verify";
  std::set<uint64_t> seen;
  for (const VerifyOp& op : batch) {
    const LiveState& s = running(op.request, op_name);
    if (!seen.insert(op.request).second) {
      throw InputError(std::string(op_name) + ": " + req_name(op.request) +
                       " is twice in the batch");
    }
    if (op.accepted == 0 && !decode) {  // discarded (overlap traces)
      if (op.snapshot || op.tree) {
        throw InputError("verify: " + req_name(op.request) +
                         ": a discarded entry (accepted 0) carries no track and no tree");
      }
      continue;
    }
    if (op.accepted < 1 || op.accepted > tokens) {
      throw InputError(std::string(op_name) + ": " + req_name(op.request) + ": accepted length " +
                       std::to_string(op.accepted) + " outside 1.." + std::to_string(tokens));
    }
    if (op.tree) {
      if (decode)
        throw InputError("decode: " + req_name(op.request) + ": a decode step has no tree");
      const int32_t capacity = layout_.config.tree_nodes;
      if (capacity == 0) {
        throw InputError("verify: " + req_name(op.request) +
                         ": a tree verify in a pool without tree nodes (header tree_nodes)");
      }
      const std::string error = tree_error(*op.tree, op.accepted, capacity, tokens);
      if (!error.empty()) throw InputError("verify: " + req_name(op.request) + ": " + error);
    }
    if (op.snapshot) snapshot_token(*op.snapshot, s.length, op.accepted, op.request);
  }
}

// What one step plans, in the order the calls run: the faulty resets, the verify, snapshots
// recomputed from a payload (before any commit replay) and copied from state rows, then what
// depends on the step's own accepted counts: scatter's commit copies, the replay strategy's
// commit replays.
struct PoolPolicy::StepPlan {
  CopyCall moves;   // paged: the live state into a new running page's block
  FillCall resets;  // fault verify-as-extend only
  VerifyCall verify;
  GatherCall gathers;  // trees in payload strategies: the accepted path made contiguous
  ReplayCall snapshots;
  CopyCall snapshot_copies;
  // After the step's own acceptance (overlap scheduling guards these on its count).
  CopyCall commit_copies;
  ReplayCall commits;
};

void PoolPolicy::gather_path(const VerifyOp& op, int32_t slot, int32_t first, StepPlan& p) const {
  if (!op.tree) return;
  PayloadGather g{slot, first, {}};
  bool moves = false;
  for (int32_t k = 0; k < op.accepted; ++k) {
    g.from.push_back(decisions_->gathered_node(*op.tree, k));
    moves = moves || g.from.back() != k;
  }
  if (moves) p.gathers.add(g, op.request);
}

// One batched step of `tokens` tokens per request (T for a verify, 1 for a decode).
PoolPolicy::StepPlans PoolPolicy::step(std::span<const VerifyOp> batch, int32_t padding,
                                       int32_t tokens, bool decode) {
  table_.compact(2 * LiveTable::kCompactAt);
  check_step(batch, tokens, decode);
  StepPlan p;
  const StrategyInfo& info = strategy_info(layout_.kind);
  p.verify.mode = decode ? info.decode_mode : info.verify_mode;
  for (const VerifyOp& op : batch) {
    LiveState& s = *table_.find_mutable(op.request);
    VerifyTask t;
    t.tokens = {op.request, s.length, op.tree ? op.tree->nodes() : tokens};
    t.from = s.loc;
    if (op.tree) t.parents = decisions_->tree_parents(*op.tree);
    if (layout_.kind == StrategyKind::kPaged) {
      move_page(op.request, s, t.tokens.count, p.moves);
      t.from = s.loc;
    }
    if (op.accepted == 0) {
      plan_discarded(op, s, t);
    } else if (decode) {
      plan_decode(op, s, t, p);
    } else {
      plan_verify(op, s, t, p);
    }
    s.length += op.accepted;
    p.verify.add(t, op.request);
  }
  note_snapshots(batch);
  p.verify.padding_rows = padding;
  // The one task standing for every padding row.
  if (padding > 0)
    p.verify.add(decisions_->padding_task(tokens, p.verify.mode, layout_.shape), kPaddingRequest);

  StepPlans out;
  out.before_verify = decisions_->left_for_next_step();
  if (!p.moves.tasks.empty()) out.before_verify.push_back(std::move(p.moves));
  if (!p.resets.tasks.empty()) out.before_verify.push_back(std::move(p.resets));
  out.verify = std::move(p.verify);
  if (!p.gathers.tasks.empty()) out.after_verify.push_back(std::move(p.gathers));
  if (!p.snapshots.tasks.empty()) out.after_verify.push_back(std::move(p.snapshots));
  if (!p.snapshot_copies.tasks.empty()) out.after_verify.push_back(std::move(p.snapshot_copies));
  if (!p.commit_copies.tasks.empty()) out.after_accept.push_back(std::move(p.commit_copies));
  if (!p.commits.tasks.empty()) out.after_accept.push_back(std::move(p.commits));
  return out;
}

void PoolPolicy::note_snapshots(std::span<const VerifyOp> batch) {
  for (const VerifyOp& op : batch) {
    if (op.snapshot && op.accepted > 0)
      decisions_->snapshot_written(op.request, op.snapshot->length, op.snapshot->row);
  }
}

Plan PoolPolicy::StepPlans::joined() && {
  Plan plan = std::move(before_verify);
  plan.push_back(std::move(verify));
  for (Plan* part : {&after_verify, &after_accept})
    std::move(part->begin(), part->end(), std::back_inserter(plan));
  return plan;
}

// A discarded entry (accepted 0, overlap traces): the step ran for the request as prepared, its
// results were thrown away, and the request finishes next. Its task is the one a verify plans;
// nothing is committed and the live-state entry only records the discard.
void PoolPolicy::plan_discarded(const VerifyOp& op, LiveState& s, VerifyTask& t) {
  LiveState scratch = s;
  StepPlan ignored;
  VerifyOp prepared = op;
  prepared.accepted = 1;  // what the task reads and writes does not depend on its count
  prepared.snapshot.reset();
  plan_verify(prepared, scratch, t, ignored);
  s.discarded = true;
}

// A step without drafts updates the live state in place into the working row, paged's into its
// running page's block (deferred and ring replay their pending tokens first, in the same call:
// the ring folds).
void PoolPolicy::plan_decode(const VerifyOp& op, LiveState& s, VerifyTask& t, StepPlan& p) {
  const StateLoc working = StateLoc::at(running_row(s));
  if (s.pending > 0) t.pending = pending_replay(s, kNoRow);
  t.out_rows[0] = working.ssm_row;
  if (strategy_info(layout_.kind).decode_mode == VerifyMode::kWindow)
    t.from.conv_row = working.ssm_row;
  t.from = decisions_->decode_source(s, t.from, strategy_info(layout_.kind).decode_mode);
  if (s.pending > 0) consume_pending(s);
  s.loc = working;
  if (op.snapshot) p.snapshot_copies.add({working, op.snapshot->row}, op.request);
}

void PoolPolicy::plan_verify(const VerifyOp& op, LiveState& s, VerifyTask& t, StepPlan& p) {
  for (int32_t row : decisions_->zeroed_before_verify(t.from))
    p.resets.add({row}, op.request);
  const int32_t snap = snapshot_index(op, s.length);
  switch (layout_.kind) {
    case StrategyKind::kScatter:
      return scatter_verify(op, snap, s, t, p);
    case StrategyKind::kInline:
    case StrategyKind::kWindow:
    case StrategyKind::kPaged:
      return draft_rows_verify(op, snap, s, t, p);
    case StrategyKind::kReplay:
      return replay_verify(op, snap, s, t, p);
    case StrategyKind::kDeferred:
      return deferred_verify(op, snap, s, t, p);
    case StrategyKind::kRing:
      return ring_verify(op, snap, s, t, p);
  }
}

// Scatter: every token's state into the working row's scratch rows; the commit copies a-1's.
void PoolPolicy::scatter_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t,
                                StepPlan& p) {
  const int32_t tokens = t.tokens.count;
  for (int j = 0; j < tokens; ++j)
    t.out_rows[j] = layout_.scratch_row(s.working_row, j);
  const StateLoc commit =
      decisions_->scatter_commit(StateLoc::at(t.out_rows[accepted_node(op, op.accepted - 1)]), t);
  if (decisions_->commits_verify()) p.commit_copies.add({commit, s.working_row}, op.request);
  if (snap >= 0) {
    p.snapshot_copies.add({StateLoc::at(t.out_rows[accepted_node(op, snap)]), op.snapshot->row},
                          op.request);
  }
  s.loc = StateLoc::at(s.working_row);
}

// Inline and window: token j's state (window: its SSM) into [working, draft rows...]; paged: into
// the block of page c+j, c the running page. Nothing is committed: the live state stays where
// token a-1's is (window and paged: with the conv window at offset a-1 of the first row).
void PoolPolicy::draft_rows_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t,
                                   StepPlan& p) {
  const bool window = strategy_info(layout_.kind).verify_mode == VerifyMode::kWindow;
  SPECSTATE_ASSERT(!(window && op.tree), "the window and paged layouts refuse tree pools");
  std::array<int32_t, kMaxTreeNodes> planes{};  // token j's row: its rollback plane
  for (int j = 0; j < t.tokens.count; ++j) {
    planes[size_t(j)] = layout_.kind == StrategyKind::kPaged ? s.blocks[size_t(j)]
                        : j == 0                             ? s.working_row
                                                             : layout_.draft_row(s.req_row, j - 1);
    t.out_rows[j] = decisions_->verify_keeps_state(j, t.tokens.count) ? planes[size_t(j)] : kNoRow;
  }
  const int32_t conv_row = planes[0];
  if (window) t.from.conv_row = conv_row;
  auto at = [&](int32_t j) {
    return window ? StateLoc{planes[size_t(j)], conv_row, j} : StateLoc::at(planes[size_t(j)]);
  };
  if (snap >= 0) {
    const int32_t column = layout_.kind == StrategyKind::kPaged
                               ? decisions_->boundary_column(snap, op.accepted, t.tokens.count)
                               : snap;
    p.snapshot_copies.add({at(accepted_node(op, column)), op.snapshot->row}, op.request);
  }
  const int32_t live =
      decisions_->live_token(op.accepted, layout_.config.geometry.conv_state_cols());
  s.loc = at(accepted_node(op, live));  // inline: the next step's current-input row
}

// Replay: payload only; the commit replays the a accepted tokens into the working row.
void PoolPolicy::replay_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t,
                               StepPlan& p) {
  const StateLoc working = StateLoc::at(s.working_row);
  t.payload_slot = layout_.payload_slot(s.req_row, 0);
  gather_path(op, t.payload_slot, 0, p);
  if (snap >= 0) p.snapshots.add({working, t.payload_slot, snap + 1, op.snapshot->row}, op.request);
  if (decisions_->commits_verify())
    p.commits.add({working, t.payload_slot, op.accepted, s.working_row}, op.request);
}

// Deferred: replay the previous step's accepted tokens first (committing them to the working
// row), then write only this step's payload, into the other buffer.
void PoolPolicy::deferred_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t,
                                 StepPlan& p) {
  const StateLoc working = StateLoc::at(s.working_row);
  const int32_t buffer = s.pending_slot == layout_.payload_slot(s.req_row, 0) ? 1 : 0;
  if (s.pending > 0) t.pending = pending_replay(s, s.working_row);
  t.payload_slot = layout_.payload_slot(s.req_row, buffer);
  gather_path(op, t.payload_slot, 0, p);
  if (snap >= 0) p.snapshots.add({working, t.payload_slot, snap + 1, op.snapshot->row}, op.request);
  s.pending = op.accepted;
  s.pending_slot = t.payload_slot;
  s.loc = working;
}

// Ring: replay the history first, folded into the checkpoint when it is long; payload into
// the ring after it; the host commit hist_len += a.
void PoolPolicy::ring_verify(const VerifyOp& op, int32_t snap, LiveState& s, VerifyTask& t,
                             StepPlan& p) {
  const StateLoc working = StateLoc::at(s.working_row);
  const int32_t T = layout_.config.tokens_per_verify;
  // Replay the history first; fold it into the checkpoint (the working row) when it is long, so
  // that this step's accepted tokens still fit the bound.
  const bool fold = s.pending >= layout_.config.ring.fold_threshold(T);
  if (s.pending > 0) t.pending = pending_replay(s, fold ? s.working_row : kNoRow);
  if (fold) consume_pending(s);
  t.payload_slot = s.pending_slot;
  t.payload_first_token = (s.pending_first + s.pending) % layout_.config.ring.slots;
  gather_path(op, t.payload_slot, t.payload_first_token, p);
  if (snap >= 0) {
    // After the verify: from the checkpoint, the history it still lacks, then the new tokens
    // up to the boundary.
    ReplayTask r = pending_task(s, working, op.snapshot->row);
    r.count += snap + 1;
    p.snapshots.add(decisions_->ring_snapshot(r, snap + 1, t.payload_first_token), op.request);
  }
  // The host's commit: the accepted tokens join the history (hist_len += accepted).
  const int32_t accepted = decisions_->ring_commit_count(op.request, op.accepted);
  s.pending += accepted;
  if (accepted > 0) s.pending_rounds |= 1u << (s.pending - 1);
}

Plan PoolPolicy::retract(uint64_t request) {
  table_.compact(2 * LiveTable::kCompactAt);
  LiveState& s = running(request, "retract");
  Plan plan;
  if (decisions_->retract_makes_real()) make_real(request, s, plan);
  if (decisions_->retract_saves())
    plan.push_back(SwapOutCall{request, StateLoc::at(s.working_row)});
  s.retracted = true;
  s.working_row = kNoRow;
  s.req_row = kNoRow;
  s.loc = StateLoc{};
  return plan;
}

Plan PoolPolicy::resume(uint64_t request, int32_t req_row, int32_t working_row) {
  table_.compact(2 * LiveTable::kCompactAt);
  const LiveState* found = table_.find(request);
  if (found == nullptr || !found->retracted) {
    throw InputError("resume: " + req_name(request) + " is not retracted");
  }
  LiveState& s = *table_.find_mutable(request);
  s.retracted = false;
  s.req_row = req_row;
  s.working_row = working_row;
  s.loc = StateLoc::at(working_row);
  decisions_->working_row_taken(working_row);
  if (layout_.kind == StrategyKind::kRing) s.pending_slot = layout_.payload_slot(req_row, 0);
  if (layout_.kind == StrategyKind::kPaged) place_pages(s);
  if (!decisions_->retract_saves()) return {};
  return {SwapInCall{request, working_row}};
}

Plan PoolPolicy::offload(int32_t row, int32_t slot) {
  decisions_->snapshot_offloaded(row, slot);
  return {OffloadCall{row, slot}};
}

PoolPolicy::RestorePlans PoolPolicy::restore_parts(int32_t slot, int32_t row) {
  decisions_->snapshot_restored(slot, row);
  const int32_t layers = layout_.shape.geometry.layers;
  const int32_t landed = decisions_->restored_before_next_event(layers);
  if (landed == layers) return {{RestoreCall{slot, row}}, {}};
  RestorePlans parts;
  if (landed > 0) parts.before_next.push_back(RestoreCall{slot, row, 0, landed});
  parts.after_next.push_back(RestoreCall{slot, row, landed, layers - landed});
  return parts;
}

Plan PoolPolicy::restore(int32_t slot, int32_t row) {
  RestorePlans parts = restore_parts(slot, row);
  for (PlanCall& call : parts.after_next)
    parts.before_next.push_back(std::move(call));
  return std::move(parts.before_next);
}

Plan PoolPolicy::handoff(uint64_t request, int64_t length, int32_t row) {
  SPECSTATE_ASSERT(layout_.config.prefill_tp > 0, "a handoff has a prefill instance");
  decisions_->snapshot_written(request, length, row);
  return {HandoffCall{request, length, layout_.config.prefill_tp, row, decisions_->handoff_conv()}};
}

Plan PoolPolicy::finish(uint64_t request) {
  table_.compact(2 * LiveTable::kCompactAt);
  LiveState* found = table_.find_mutable(request);
  if (found == nullptr) throw InputError("finish: " + req_name(request) + " does not exist");
  LiveState& s = *found;
  decisions_->leave_request_row(s);
  Plan plan;
  if (s.retracted) {
    plan.push_back(DropSavedCall{request});
  } else if (!s.discarded) {  // a discarded step left nothing worth keeping
    make_real(request, s, plan);
  }
  table_.erase(request);
  return plan;
}

void PoolPolicy::adopt(uint64_t request, const PoolPolicy& other, int64_t length_error) {
  SPECSTATE_ASSERT(other.layout_.kind == layout_.kind && other.fault_ == fault_,
                   "adopt from a copy of the same policy");
  table_.compact(2 * LiveTable::kCompactAt);
  if (const LiveState* s = other.table_.find(request)) {
    table_.set(request, *s).length += length_error;
  } else {
    table_.erase(request);
  }
  decisions_->adopt(request, *other.decisions_);
}

PoolPolicy::Readable PoolPolicy::readable(uint64_t request) const {
  const LiveState& s = live(request);
  if (s.retracted)
    throw InputError("read: " + req_name(request) + " is retracted (its state is swapped out)");
  Readable r;
  if (s.pending > 0) {
    const int32_t probe = layout_.inspect_row();
    r.plan.push_back(
        call_of<ReplayCall>(pending_task(s, StateLoc::at(s.working_row), probe), request));
    r.loc = StateLoc::at(probe);
  } else {
    r.loc = s.loc;
  }
  return r;
}

}  // namespace specstate
