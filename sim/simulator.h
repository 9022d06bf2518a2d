// The scheduler simulator: replays a trace through lanes (backend x strategy) in lockstep.
//
// The lanes run each event concurrently (on TBB's threads, which the CPU backend's own work
// shares). After every event (or only at `check` events, selectable) it compares, across
// strategies,
//  - the per-token outputs of a verify / decode, and the snapshot rows the event filled;
//  - the live state of each request the event names (read through the live-state table), or
//    the swapped-out state of the request it retracts;
//  - between lanes running the same strategy on different backends, the rows the event wrote.
// At check events and at the end of the trace every request (running or swapped out) and every
// stored row are compared. States are compared by their digests, computed where they live, and
// element by element only when the digests differ, so that the report can name the elements;
// each event costs what it touched, and a replay grows linearly with its trace.
// It stops at the first divergence and reports the trace line, the event, the request, the
// row, the layer, the tensor and the first differing elements. An ownership checker refuses
// any write to a row the protocol does not give to the request the task acts for.
//
// Each lane stores only the rows and payload slots its plans name (sim/storage.h), and only the
// layers asked for: the GDN layers are independent, so a subset computes exactly the bytes of
// those layers in a full replay.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/compact_backend.h"
#include "backends/state_backend.h"
#include "backends/state_diff.h"
#include "core/strategy/fault.h"
#include "core/strategy/host_scheduler.h"
#include "core/strategy/plan.h"
#include "core/strategy/strategy.h"
#include "core/trace/events.h"
#include "sim/lane.h"

namespace specstate::sim {

enum class CompareAt : uint8_t { kEveryEvent, kChecks };

// Where a replay is, for a progress bar. Work is tokens x layers x lanes.
struct Progress {
  size_t events_done = 0, events_total = 0;
  int64_t work_done = 0, work_total = 0;
  double seconds = 0;  // wall time so far
};

struct SimOptions {
  std::vector<LaneSpec> lanes;
  CompareAt compare_at = CompareAt::kEveryEvent;
  bool check_ownership = true;
  std::vector<int32_t> layers;  // model layers to simulate (parse_layer_list); empty: all
  RingParams ring;              // the ring lanes' parameters
  // Each lane's storage (lane_storage), when the caller computed it already for the memory
  // check; empty: replay() computes it.
  std::vector<StoredRows> storage;
  // Called after each event.
  std::function<void(const Progress&)> progress;
  // Called with each lane's plan of an event once the lane planned it (before it runs; an
  // ownership divergence stops the replay before), from the thread that runs the lane: the lanes
  // of an event run concurrently, each calls with its own index (sim/report.h records here).
  std::function<void(size_t lane, const trace::Line& line, const Lane& state, const Plan& plan)>
      observe;
  // Called after a lane ran an event's plan, before the comparison (tests corrupt lanes here).
  std::function<void(size_t lane, const trace::Line& line, StateBackend& backend)> after_event;
};

struct Divergence {
  long line = 0;
  std::string event;  // the event's kind and a short description
  std::string what;   // "live state", "snapshot row", "outputs", "physical row", "ownership"
  std::string lane_a, lane_b;
  std::optional<uint64_t> request;  // the request it concerns, when there is one
  int32_t row_a = kNoRow, row_b = kNoRow;
  std::vector<ElementDiff> elements;  // first few
  std::optional<DiffMap> map;         // a state divergence: where the two states differ
  std::string message() const;        // the multi-line human report
  // The same, located as \"FILE:LINE: event\" on its first line (compiler style).
  std::string report(const std::string& file) const;
};

struct LaneResult {
  std::string name;
  double seconds = 0;          // wall time this lane spent executing its plans
  AllocationReport allocated;  // what its backend allocated
};

struct ReplayReport {
  bool agree = true;
  std::optional<Divergence> divergence;
  size_t events = 0;           // events replayed
  size_t compares = 0;         // comparison points (the end of the trace is one)
  size_t full_compares = 0;    // of which compared every request and row (checks, the end)
  double seconds = 0;          // wall time of the whole replay
  double compare_seconds = 0;  // of which comparing
  std::vector<LaneResult> lanes;
  // Final digest of every running request's live state (lane 0), request -> digest.
  std::vector<std::pair<uint64_t, uint64_t>> final_digests;
};

// Throws InputError ("FILE:LINE: message") for a trace the policy refuses.
ReplayReport replay(const trace::Trace& trace, const SimOptions& options);

// The pool a trace's header describes, holding the model layers `layers` (empty: all).
// The ring strategy's parameters are not the trace's: `ring` gives them.
PoolConfig pool_config(const trace::Header& header, const std::vector<int32_t>& layers = {},
                       const RingParams& ring = {});

// Work units (tokens x layers, one lane) of each event, for progress bars: extend tokens, T per
// verify entry, 1 per decode entry.
int64_t event_tokens(const trace::Event& event, int32_t tokens_per_verify);

}  // namespace specstate::sim
