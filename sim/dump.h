// specstate dump: one request's inputs, outputs and states, token by token, as NumPy files
// for external references (layout and a NumPy check in docs/interop.md).
//
// The trace is replayed through one lane (sim/lane.h: backend x strategy, on the synchronous
// schedule) exactly as `specstate replay` drives it: the same plans, the same executor, the same
// row-ownership check.
// Beside the lane, a recorder (a small fp32 pool of the lane's backend kind) follows the chosen
// request and computes, with the same primitives, the state after every token it processed and
// the token's output o: state-rows verifies of at most 16 tokens from the request's state, each
// continuing from the exact fp32 state the one before left, whether the tokens were prefilled
// (a prefill carries fp32 from token to token, as these verifies do), verified (accepted or
// not) or decoded. On a bf16 pool the recorded states are the fp32 ones rounded as the pool
// stores them. Costs: 1 + 16 fp32 state rows; a prefill of n tokens is run once (n / 16
// verifies).
// After every event the lane is checked against the recorder: the request's live state (or
// its swapped-out copy), the lane's verify outputs for the request, the per-token states the
// lane's verify wrote (scatter, inline, window) and the snapshot rows it filled. A difference
// is a strategy or backend bug: the dump reports it and writes nothing.
//
// Token inputs, parameters and conv outputs are regenerated on the host by core/numerics (a
// pure function of the seed and the recorded conv window); only states and o come from the
// backend. So dumps through different strategies are byte-identical, and a CPU and a CUDA
// dump are byte-identical exactly when the backends are.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/trace/events.h"
#include "sim/simulator.h"

namespace specstate::sim {

struct DumpOptions {
  uint64_t request = 0;
  std::string out_dir;  // must not exist, or be an empty directory
  LaneSpec lane{"cpu", StrategyKind::kInline};
  std::vector<int32_t> layers;  // model layers to dump (parse_layer_list); empty: all
  RingParams ring;              // a ring lane's parameters (replay's --ring-*)
  // The request's tokens to write, as indices into its token order (ascending, each below
  // request_tokens); empty: all. Every token is still computed and checked: a token's state
  // chains from the ones before it.
  std::vector<int64_t> tokens;
  // The lane's storage (lane_storage), when the caller computed it already for the memory
  // check; empty: dump_request() computes it.
  std::optional<StoredRows> storage;
  std::function<void(const Progress&)>
      progress;  // after each event; work: the lane's tokens x layers
  // Stops after the event at this trace line (0: the whole trace): the dump holds the request's
  // tokens up to that event, as if the trace ended there (replay --dump-on-divergence).
  long until_line = 0;
  // Records what the lane holds instead of checking it, so that a lane with an injected fault
  // shows it (replay --dump-on-divergence): each event of the request runs from the lane's live
  // state before it; a verify's states are the rows it wrote (the recorder's where it wrote
  // none) and its outputs o are the lane's; the state after the request's last accepted token
  // of the event (an extend's last, a decode's) is the lane's live state after it. Where the
  // lane differs from the recorder, DumpReport::differs says where first, and the dump is
  // written all the same. meta.json names the lane ("follows_lane").
  bool follow_lane = false;
};

struct DumpReport {
  bool agree = true;     // the lane matched the recorder at every event of the request
  std::string mismatch;  // the first difference, "LINE: what" (nothing was written)
  std::string differs;   // follow_lane: the lane's first difference, "LINE: what" (written)
  int64_t tokens = 0;    // tokens written
  int64_t files = 0;     // files written, meta.json included
  int64_t bytes = 0;
  double seconds = 0;  // wall time
};

// Writes the dump of `options.request` into `options.out_dir`: first into a temporary sibling
// directory, renamed at the end, so a failed dump leaves nothing behind. The trace must have
// passed trace::validate_trace. Throws InputError for a request that processes no token in
// the trace, an unknown backend, an out dir that exists and is not empty or cannot be
// created, and ("FILE:LINE: message") for an event the policy refuses.
DumpReport dump_request(const trace::Trace& trace, const DumpOptions& options);

// Bytes dump_request allocates on the lane's backend beside the lane's pools (its recorder),
// for the memory check before it runs (tools/lane_checks.h).
int64_t recorder_bytes(const trace::Header& header, const LaneSpec& lane,
                       const std::vector<int32_t>& layers = {});

// The tokens `request` processes in the trace (prefill, every verified token, decode), up to
// the event at `until_line` (0: all). Throws InputError when it processes none, listing the
// requests the trace has.
int64_t request_tokens(const trace::Trace& trace, uint64_t request, long until_line = 0);

}  // namespace specstate::sim
