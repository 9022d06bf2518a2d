// The vocabulary of backend primitives: plain data describing which rows a call reads and
// writes. Policy in core/ (the strategies) produces these; backends/ execute them. See
// backends/state_backend.h for what each primitive does with them.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/numerics/bf16.h"

namespace specstate {

inline constexpr int32_t kNoRow = -1;
inline constexpr int kMaxVerifyTokens = 16;  // T <= 16
// Nodes of one draft tree (EAGLE top-k > 1): a tree verify runs N <= 64 tokens, and its accepted
// path is at most T long.
inline constexpr int kMaxTreeNodes = 64;
// Tokens one task may run from a payload slot: a pending replay and the verify after it
// together, or one replay (the ring strategy's history and a verify's tokens).
inline constexpr int kMaxReplayTokens = 2 * kMaxVerifyTokens;
// Token positions of one payload slot (a tree's nodes, the ring strategy's ring slots).
inline constexpr int kMaxPayloadTokens = 128;

// Where a state lives: SSM in one row, the conv window at a column offset of a (possibly
// different) row. The window strategy keeps these apart; everything else uses at(row).
struct StateLoc {
  int32_t ssm_row = kNoRow;
  int32_t conv_row = kNoRow;
  int32_t conv_offset = 0;

  static StateLoc at(int32_t row) { return {row, row, 0}; }
  bool is_none() const { return ssm_row == kNoRow; }
  friend bool operator==(const StateLoc&, const StateLoc&) = default;
};

// Overlap scheduling (docs/strategies.md): a task prepared before the host knew the accepted
// count it depends on runs only where the device's count says so. The backend keeps one count per
// request row (set_accepted writes it, as an engine's sampler does); a guarded task runs when
// accepted[req_row] == count and is otherwise a padding task (nothing read or written, zero
// outputs). req_row kNoRow: unguarded. Tasks of one call whose guards exclude each other (one
// request row, different counts) may name the same rows: at most one of them runs.
struct Guard {
  int32_t req_row = kNoRow;
  int32_t count = 0;

  bool is_none() const { return req_row == kNoRow; }
  bool excludes(const Guard& other) const {
    return req_row != kNoRow && req_row == other.req_row && count != other.count;
  }
  friend bool operator==(const Guard&, const Guard&) = default;
};

// One entry of set_accepted: request row `req_row` accepted `count` tokens in the step just run
// (0: the step's results for it were discarded).
struct AcceptedCount {
  int32_t req_row = kNoRow;
  int32_t count = 0;
};

// Tokens whose inputs are generated: positions first_position .. first_position+count-1.
struct TokenSpan {
  uint64_t request_id = 0;
  int64_t first_position = 0;
  int32_t count = 0;
};

// Write the state after the first `after_tokens` tokens of a task (SSM and the W-1 column conv
// window at offset 0) into `row`.
struct StateWrite {
  int32_t after_tokens = 0;
  int32_t row = kNoRow;
};

// prefill: run `tokens` from `from` (or from the zero state) and write the requested states:
// the final state and any snapshots. Reads `from`; writes each StateWrite's row.
struct PrefillTask {
  TokenSpan tokens;
  bool from_zero = true;  // true: start from zeros and ignore `from`
  StateLoc from;
  std::vector<StateWrite> writes;
  Guard guard;
};

// How a verify keeps the state after each token.
enum class VerifyMode : uint8_t {
  kStateRows,  // state after token j (SSM + conv window) -> out_rows[j]; -1: not kept
  kWindow,     // SSM after token j -> out_rows[j]; the conv buffer of from.conv_row is rewritten
               // in place as [window[1..W-2], x_0 .. x_{n-1}] so that the window after token j
               // sits at column offset j (needs conv_cols >= W-2+n)
  kPayload,    // no state is written; token j's inputs -> payload slot `payload_slot`, at its
               // ring position payload_first_token + j
};

// A payload slot is a ring of payload_tokens token inputs: token j of a span that starts at
// `first_token` is stored at (first_token + j) % payload_tokens. The replay and deferred
// strategies write a slot from position 0 and never wrap; the ring strategy's slot is its ring.
//
// `round_after` marks step boundaries inside a replayed span: with bit j set, the state after
// span token j is rounded to the pool dtype exactly as a write and read-back would, because
// every other strategy stores the state there (the canonical step, docs/numerics.md).

// Replay run before a verify's own tokens (deferred and ring): replay `count` tokens from
// payload slot `payload_slot` starting at the task's `from`, round the state to the pool dtype
// (a verify always starts from a stored state), write it to `commit_row` unless that is kNoRow,
// and continue the verify from it.
struct PendingReplay {
  int32_t payload_slot = kNoRow;
  int32_t count = 0;  // 0: nothing pending
  int32_t commit_row = kNoRow;
  int32_t first_token = 0;
  uint32_t round_after = 0;  // bits below count - 1 (the last token is always rounded)
};

// A verify's tokens are a chain (token j continues from token j-1) or a draft tree: node i
// continues from node parents[i], node 0 is the root (parent -1) and continues from the task's
// state, every other node's parent comes before it (0 <= parents[i] < i). A node at depth d
// (d parents above it) is token position first_position + d of branch i - d, whose inputs are
// generated at that coordinate (core/numerics/inputs.h: tree_coordinate); a chain is branch 0.
struct VerifyTask {
  TokenSpan tokens;  // the T verified tokens or N tree nodes (1 for a decode step without drafts)
  StateLoc from;     // from.ssm_row == -1: padding task, nothing read or written, outputs zero
  std::array<int32_t, kMaxTreeNodes> out_rows = filled_rows();  // per token (node)
  int32_t payload_slot = kNoRow;                                // kPayload only
  int32_t payload_first_token = 0;
  PendingReplay pending;
  std::vector<int8_t> parents;  // empty: a chain; else one per node (kStateRows and kPayload)
  Guard guard;

  template <size_t N = kMaxTreeNodes>
  static std::array<int32_t, N> filled_rows() {
    std::array<int32_t, N> rows{};
    rows.fill(kNoRow);
    return rows;
  }
};

// gather_payload: inside payload slot `slot`, the span that starts at ring position
// `first_token` gets entry j <- entry from[j] for every j < from.size(): the accepted path of a
// tree verify (whose nodes' inputs the verify wrote in node order) becomes a contiguous history.
// `from` strictly increases and from[j] >= j, so the entries can move in place, in order.
struct PayloadGather {
  int32_t slot = kNoRow;
  int32_t first_token = 0;
  std::vector<int32_t> from;
};

// replay: run `count` tokens whose inputs are read from payload slot `payload_slot` (the span
// from `first_token`) from `from`, and write the final state (SSM + conv window at offset 0) to
// dst_row.
struct ReplayTask {
  StateLoc from;
  int32_t payload_slot = kNoRow;
  int32_t count = 0;
  int32_t dst_row = kNoRow;
  int32_t first_token = 0;
  uint32_t round_after = 0;  // bits below count
  Guard guard;
};

// copy_rows: the state at `src` (SSM row, W-1 conv columns at the offset) -> dst_row (offset 0).
// All copies of a call read before any writes, so src and dst may overlap (in-place shift).
struct RowCopy {
  StateLoc src;
  int32_t dst_row = kNoRow;
  Guard guard;
};

// fill_row: every byte of `row` (all layers, conv and SSM) set to the call's byte.
struct RowFill {
  int32_t row = kNoRow;
  Guard guard;
};

// A row's bytes on the host, all layers.
struct RowBytes {
  std::vector<num::bf16_bits> conv;  // [layers, conv_dim, cols] (cols as requested)
  std::vector<uint8_t> ssm;          // [layers, HV, K, V] in the pool dtype, little-endian
  friend bool operator==(const RowBytes&, const RowBytes&) = default;
};

}  // namespace specstate
