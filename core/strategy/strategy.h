// The six state-handling strategies (docs/strategies.md) and their memory layouts.
//
// Every layout starts with the scheduler's rows 0 .. pool_rows-1; what follows belongs to the
// strategy and never appears in a trace:
//   scatter   scratch rows [pool_rows, T]: verify writes token j of working row w to
//             pool_rows + w*T + j; commit copies step a-1 into the working row.
//   inline    draft region [(max_requests+1), T-1]: output rows of request row r are
//             [working, pool_rows + r*(T-1) + 0 .. T-2]; the +1 request row is the padding
//             request's (tokenspeed #159), allocated and never written (padding tasks are -1).
// A pool for draft trees of N nodes (PoolConfig::tree_nodes) sizes these by N instead of T
// (scatter N scratch rows, inline N-1 draft rows, replay and deferred N payload tokens, a ring
// with room for N), and the window layout refuses it: its conv buffer holds one linear sequence
// per request row, which a tree's branches do not share.
//   window    T-1 extra SSM blocks per request row, the working row being block 0, and every
//             row's conv widened to W-1+T-1 columns; the live block and conv offset are a-1.
//   replay    one payload slot (T tokens of inputs) per request row; commit replays a tokens.
//   deferred  two payload slots per request row (double buffer) and one inspection row where a
//             virtual state is materialised for reading without changing the live-state table.
//   ring      one payload ring of `ring.slots` tokens per request row, holding the history the
//             working row (the checkpoint) has not absorbed; a verify replays it first and folds
//             it into the checkpoint only when it is long (FlashInfer #4081); one inspection row.
//   paged     T blocks per request row beside the working row (vLLM's align mode): a request's
//             block table maps the running page and the T-1 lookahead pages after it onto these
//             T+1 rows; every row's conv widened to W-1+T-1 columns, as the window layout's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/geometry.h"
#include "core/pool_shape.h"
#include "core/primitives.h"

namespace specstate {

// A seventh strategy is an enumerator here, its entry in strategy_entry() (strategy.cpp; a kind
// without one does not compile) and its cases in the switches over StrategyKind that -Werror=switch
// lists (its layout, step bytes, plans, row ownership).
enum class StrategyKind : uint8_t { kScatter, kInline, kWindow, kReplay, kDeferred, kRing, kPaged };

// How `specstate footprint --svg` draws a strategy.
struct ChartStyle {
  const char* colour = "";  // "#D55E00"
  const char* dash = "";    // SVG stroke-dasharray, "none" for a solid line
  const char* note = "";    // the legend's line under the name
};

// What a strategy is, apart from its layout and plans: the facts the tools read.
struct StrategyInfo {
  StrategyKind kind = StrategyKind::kScatter;
  std::string_view name;                            // on the command line and in reports
  VerifyMode verify_mode = VerifyMode::kStateRows;  // of a verify with drafts
  VerifyMode decode_mode = VerifyMode::kStateRows;  // of a step without drafts
  int32_t payload_buffers = 0;                      // payload slots per request row
  // Why it does not run draft trees (make_layout refuses a tree pool); empty: it runs them.
  std::string_view no_trees;
  ChartStyle chart = {};

  bool runs_trees() const { return no_trees.empty(); }
};

const StrategyInfo& strategy_info(StrategyKind kind);
std::string_view to_string(StrategyKind kind);
// One name, or "all"; InputError for anything else.
std::vector<StrategyKind> parse_strategies(std::string_view text);
const std::vector<StrategyKind>& all_strategies();
// The strategies that run a pool of draft trees of `tree_nodes` nodes (0: chains, all of them).
std::vector<StrategyKind> strategies_running(int32_t tree_nodes);
// "the window strategy does not run trees": those that do not, for the tools' notes.
std::string no_trees_text();
// "scatter, inline, window, ...": every strategy's name in table order, for the tools' help.
std::string strategy_names_text();

// The ring strategy's parameters; the defaults are FlashInfer #4081's (RING_SLOTS, W_RING,
// flush_min). make_layout checks them against T.
struct RingParams {
  int32_t slots = 32;        // token positions of one request row's ring
  int32_t max_history = 16;  // history tokens the ring holds at most between steps
  int32_t fold_at = 0;       // a verify folds first when the history holds >= fold_at tokens;
                             // 0: max_history - T + 1, the latest fold that keeps the bound
  int32_t fold_threshold(int32_t T) const { return fold_at > 0 ? fold_at : max_history - T + 1; }
};

// What the scheduler fixes: the model, the pool, the verify width; and the ring's parameters.
struct PoolConfig {
  ModelGeometry geometry;
  SsmDtype ssm_dtype = SsmDtype::kF32;
  int32_t tokens_per_verify = 4;  // T
  int32_t pool_rows = 0;          // scheduler rows
  int32_t max_requests = 0;       // request rows
  RingParams ring;
  int32_t tree_nodes = 0;  // nodes of the largest draft tree a verify may run; 0: chains only
  int32_t page_size = 0;   // tokens per prefix-cache page (the trace's); 0: no snapshots
  int32_t prefill_tp = 0;  // TP of the prefill instance handoffs come from (the trace's); 0: none

  // Tokens one verify writes at most: T, or a tree's nodes.
  int32_t verify_tokens() const {
    return tree_nodes > tokens_per_verify ? tree_nodes : tokens_per_verify;
  }
};

// Rows and bytes a strategy allocates, all layers. `shape` is exactly what the backend
// allocates; the category bytes add up to shape.total_bytes().
struct StrategyLayout {
  StrategyKind kind = StrategyKind::kScatter;
  PoolConfig config;
  PoolShape shape;
  int32_t draft_rows = 0;    // inline draft region / window extra blocks / paged blocks
  int32_t scratch_rows = 0;  // scatter intermediates
  int32_t inspect_rows = 0;  // deferred and ring inspection row
  int64_t pool_bytes = 0;    // scheduler rows (conv at this layout's width)
  int64_t draft_bytes = 0;
  int64_t scratch_bytes = 0;
  int64_t inspect_bytes = 0;
  int64_t payload_bytes = 0;
  int64_t total_bytes() const {
    return pool_bytes + draft_bytes + scratch_bytes + inspect_bytes + payload_bytes;
  }

  // Rows owned by the strategy on behalf of a request (see the file comment).
  int32_t scratch_row(int32_t working_row, int32_t token) const;
  int32_t draft_row(int32_t req_row, int32_t token) const;    // inline / window, token 0..N-2
  int32_t paged_block(int32_t req_row, int32_t block) const;  // paged, block 0..T-1
  int32_t payload_slot(int32_t req_row, int32_t buffer) const;
  int32_t inspect_row() const;
};

StrategyLayout make_layout(StrategyKind kind, const PoolConfig& config);

// The most pending tokens a verify of `kind` replays before its own N tokens (deferred: the last
// step's T; ring: the history its ring leaves room for beside them, payload_tokens - N); 0 for
// the strategies that replay nothing before a verify.
int32_t max_pending_tokens(StrategyKind kind, const PoolShape& shape, int32_t T, int32_t N);

// Bytes one verify step moves for one request, all layers, with `accepted` tokens accepted.
// The ring's step depends instead on the history it replays first (`history` tokens; it folds
// them into the checkpoint when history >= its fold threshold).
struct StepBytes {
  int64_t state_read = 0;
  int64_t state_write = 0;
  int64_t payload_read = 0;
  int64_t payload_write = 0;
  int64_t state_total() const { return state_read + state_write; }
  int64_t total() const { return state_total() + payload_read + payload_write; }
};

StepBytes verify_step_bytes(const StrategyLayout& layout, int32_t accepted, int32_t history = 0);

// The mean bytes of one request's verify step, over a long run of verifies whose accepted
// lengths a = 1..T have the probabilities accept_weights[a-1] (normalised here). For the ring,
// the mean over the stationary distribution of its history length, and how often it folds.
struct MeanStepBytes {
  double state_read = 0, state_write = 0, payload_read = 0, payload_write = 0;
  double fold_rate = 0;       // ring: folds per verify step
  double history_tokens = 0;  // ring: history tokens replayed per verify step
  double page_moves = 0;      // paged: moves of the running page per verify step
  double state_total() const { return state_read + state_write; }
  double payload_total() const { return payload_read + payload_write; }
};
MeanStepBytes mean_verify_step_bytes(const StrategyLayout& layout,
                                     const std::vector<double>& accept_weights);
// Weights of "every token accepted" (a = T always), the figures' default.
std::vector<double> all_accepted_weights(int32_t T);
// The generator's model: each draft accepted with accept_prob until the first rejection, so
// a = 1 + the leading accepted drafts.
std::vector<double> geometric_accept_weights(double accept_prob, int32_t T);
// InputError ("--accept-weights: ...") unless there are T weights in 0..1e12, not all zero.
void check_accept_weights(const std::vector<double>& weights, int32_t T);

}  // namespace specstate
