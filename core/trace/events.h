// The trace model: what a scheduler decided, step by step. Traces carry no
// activations (inputs are regenerated from the seed) and never name a strategy's own rows
// (draft region, scratch, payload): those are the pool's business.
//
// Rows named here are scheduler rows, 0 .. pool_rows-1. A request's "request row"
// (req_pool_idx) is 0 .. max_requests-1 and addresses per-request side tables (draft region,
// payload slots). The on-disk format (JSON Lines) is docs/trace-format.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/draft_tree.h"
#include "core/pool_shape.h"
#include "core/trace/rules.h"

namespace specstate::trace {

// A GDN geometry that is not a preset (format version 2): one rank's heads, so tp is 1.
struct CustomGeometry {
  int32_t layers = 0, num_k_heads = 0, num_v_heads = 0, head_k_dim = 0, head_v_dim = 0;
  int32_t conv_dim = 0;  // 2*H*K + HV*V, recorded as the engine has it and checked
  int32_t conv_width = 0;
  RecurrenceKind recurrence = RecurrenceKind::kGatedDeltaNet;  // optional field 'recurrence'

  bool operator==(const CustomGeometry&) const = default;
};

struct Header {
  int version = kOldestFormatVersion;  // as read; a writer writes lowest_version()
  std::string preset;                  // e.g. "qwen3-next-80b-a3b"; empty with a geometry
  std::optional<CustomGeometry> geometry;
  int32_t tp = 1;
  int32_t rank = 0;  // version 2: which of the tp ranks the trace records (0 .. tp-1)
  SsmDtype ssm_dtype = SsmDtype::kF32;
  int32_t draft_tokens = 3;  // T - 1 (T = tokens per verify, bonus included)
  int32_t pool_rows = 0;     // scheduler-owned rows
  int32_t max_requests = 0;  // request rows
  int32_t page_size = 0;     // prefix-cache page, tokens; 0 = no snapshots
  uint64_t seed = 0;         // deterministic inputs and parameters
  int32_t tree_nodes = 0;    // version 2: nodes of the largest draft tree; 0 = chains only
  // Version 2, overlap scheduling of depth `overlap` (0: synchronous): up to `overlap` forward
  // steps (verify, decode) in flight, each prepared before the results (accepted lengths) of
  // those before it were applied on the host; verify entries may be discarded (accepted 0).
  int32_t overlap = 0;
  // Version 2: slots of a host (or external) tier that offload events save snapshots into and
  // restore events load them from (SGLang HiCache, vLLM's offload connector, LMCache).
  int32_t host_slots = 0;
  // Version 2: the tensor-parallel degree of the prefill instance that handoff events bring
  // requests from (prefill/decode disaggregation); 0: none.
  int32_t prefill_tp = 0;

  int32_t tokens_per_verify() const { return draft_tokens + 1; }
  // The oldest format version that expresses this header: 2 with a custom geometry, a rank other
  // than 0, draft trees, overlap, host slots or a prefill instance, else 1.
  int lowest_version() const {
    return geometry || rank > 0 || tree_nodes > 0 || overlap > 0 || host_slots > 0 || prefill_tp > 0
               ? 2
               : kOldestFormatVersion;
  }
  // "qwen3-next-80b-a3b", or "custom" for a geometry.
  const std::string& model_name() const;

  bool operator==(const Header&) const = default;
};

// Fill `row` with the state after the request's first `length` tokens (a page boundary).
struct TrackWrite {
  int64_t length = 0;
  int32_t row = -1;

  bool operator==(const TrackWrite&) const = default;
};

// Prefill of `tokens` new tokens. A new request (first extend) starts from zeros, or on a
// prefix hit from `cow_src_row`, which holds the state after `prefix_len` tokens; a running
// request continues (chunked prefill) from its live state.
struct Extend {
  uint64_t request = 0;
  int32_t req_row = -1;           // required on the first extend; -1 (absent) or equal afterwards
  int32_t working_row = -1;       // required on the first extend; -1 (absent) or equal afterwards
  int32_t tokens = 0;             // >= 1
  int64_t prefix_len = 0;         // first extend on a prefix hit
  int32_t cow_src_row = -1;       // with prefix_len > 0; a cache row other than working_row
  std::vector<TrackWrite> track;  // page boundaries in (old length, old length + tokens]

  bool operator==(const Extend&) const = default;
};

// One request of a verify batch: `accepted` of the T tokens were accepted (1..T, bonus
// included). In an overlap trace accepted 0 is a discarded entry: the step ran for the request,
// prepared before the host knew it had finished, and its results were thrown away; it carries no
// track, and the next event naming the request is its finish. `track` names the row that gets
// the snapshot of a page boundary crossed inside the accepted tokens. With a `tree` (version 2) the
// verify ran the tree's nodes instead of T tokens, and the accepted tokens are its path (accepted =
// the path's length).
struct VerifyEntry {
  uint64_t request = 0;
  int32_t accepted = 0;
  std::optional<TrackWrite> track;
  std::optional<DraftTree> tree;

  bool operator==(const VerifyEntry&) const = default;
};

// A verify step: T tokens per request; `padding` CUDA-graph padding rows (-1) in the batch.
struct Verify {
  std::vector<VerifyEntry> batch;
  int32_t padding = 0;

  bool operator==(const Verify&) const = default;
};

// A decode step without drafts (T = 1, the token is always accepted).
struct DecodeEntry {
  uint64_t request = 0;
  std::optional<TrackWrite> track;

  bool operator==(const DecodeEntry&) const = default;
};
struct Decode {
  std::vector<DecodeEntry> batch;
  int32_t padding = 0;

  bool operator==(const Decode&) const = default;
};

// The request leaves the running batch; its live state is saved (made real, then swapped out
// to host memory) and its working row and request row are freed.
struct Retract {
  uint64_t request = 0;

  bool operator==(const Retract&) const = default;
};

// The retracted request comes back into `working_row` and `req_row` (any free ones), its saved
// state swapped in.
struct Resume {
  uint64_t request = 0;
  int32_t req_row = -1;
  int32_t working_row = -1;

  bool operator==(const Resume&) const = default;
};

// The request ends; its working row and request row are freed and reusable at once. A
// retracted request may finish too (aborted while swapped out): its saved state is dropped.
struct Finish {
  uint64_t request = 0;

  bool operator==(const Finish&) const = default;
};

// Compare all lanes now (the simulator can also compare after every event).
struct Check {
  bool operator==(const Check&) const = default;
};

// Version 2: the snapshot that cache row `row` holds is saved into host slot `slot` (any
// earlier content of the slot is replaced). The row keeps its snapshot until a later event
// reuses it.
struct Offload {
  int32_t row = -1;
  int32_t slot = -1;

  bool operator==(const Offload&) const = default;
};

// Version 2: host slot `slot` is loaded into `row`, which then holds that snapshot, of exactly
// the length it was saved at; a prefix hit on it recomputes the tokens after it. `row` is any
// row that is not a running request's working row (a snapshot it held is replaced).
struct Restore {
  int32_t slot = -1;
  int32_t row = -1;

  bool operator==(const Restore&) const = default;
};

// Version 2, prefill/decode disaggregation (a header with prefill_tp): request `request`'s first
// `length` tokens were prefilled by the prefill instance, the same model at tensor-parallel
// degree prefill_tp; the state after them arrives resliced to this rank (SSM by value heads, conv
// by the q | k | v groups) into `row`, which then holds that snapshot, as a restored row does. The
// request starts on this instance with a prefix hit on `row` (prefix_len `length`) that computes
// the tokens after it. `request` has not run here before; `row` is any row that is not a running
// request's working row (a snapshot it held is replaced).
struct Handoff {
  uint64_t request = 0;
  int64_t length = 0;
  int32_t row = -1;

  bool operator==(const Handoff&) const = default;
};

using Event =
    std::variant<Extend, Verify, Decode, Retract, Resume, Finish, Check, Offload, Restore, Handoff>;

struct Line {
  long line = 0;  // 1-based line in the trace file
  Event event;

  bool operator==(const Line&) const = default;
};

struct Trace {
  std::string file;      // for messages
  long header_line = 1;  // the header's line (comment lines may precede it)
  Header header;
  std::vector<Line> events;

  bool operator==(const Trace&) const = default;
};

}  // namespace specstate::trace
