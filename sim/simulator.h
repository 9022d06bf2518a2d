// The scheduler simulator: replays a trace through lanes (backend x strategy) in lockstep.
//
// After every event (or at every `check` event, selectable) it compares
//  (a) physical rows of lanes running the same strategy on different backends, byte for byte;
//  (b) across strategies, each request's logical live state (read through the live-state
//      table), its swapped-out state while retracted, the snapshot rows the event filled, and
//      after every verify / decode the per-token outputs.
// It stops at the first divergence and reports the trace line, the event, the request, the
// row, the layer, the tensor and the first differing elements. An ownership checker refuses
// any write to a row the protocol does not give to the request the task acts for.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/state_backend.h"
#include "core/strategy/fault.h"
#include "core/strategy/plan.h"
#include "core/strategy/strategy.h"
#include "core/trace/events.h"

namespace specstate {
class PoolPolicy;
}

namespace specstate::sim {

struct LaneSpec {
  std::string backend;  // "cpu" | "cuda"
  StrategyKind strategy = StrategyKind::kInline;
  Fault fault = Fault::kNone;  // injected into this lane's policy (core/strategy/fault.h)
  std::string name() const;    // "cpu/inline", "cpu/inline+no-flush-on-retract"
};

enum class CompareAt : uint8_t { kEveryEvent, kChecks };

struct SimOptions {
  std::vector<LaneSpec> lanes;
  CompareAt compare_at = CompareAt::kEveryEvent;
  bool check_ownership = true;
  // Called after each event with (events done, events total).
  std::function<void(size_t, size_t)> progress;
  // Called after a lane ran an event's plan, before the comparison (tests corrupt lanes here).
  std::function<void(size_t lane, const trace::Line& line, StateBackend& backend)> after_event;
};

// One differing element.
struct ElementDiff {
  std::string tensor;  // "conv" | "ssm" | "outputs"
  int32_t layer = 0;
  std::string index;             // e.g. "[channel 17, col 2]", "[head 3, k 5, v 9]"
  std::string value_a, value_b;  // hex and decimal
};

struct Divergence {
  long line = 0;
  std::string event;  // the event's kind and a short description
  std::string what;   // "live state", "snapshot row", "outputs", "physical row", "ownership"
  std::string lane_a, lane_b;
  uint64_t request = 0;
  bool has_request = false;
  int32_t row_a = -1, row_b = -1;
  std::vector<ElementDiff> elements;  // first few
  std::string message() const;        // the multi-line human report
  // The same, located as \"FILE:LINE: event\" on its first line (compiler style).
  std::string report(const std::string& file) const;
};

struct LaneResult {
  std::string name;
  double seconds = 0;  // time spent executing this lane's plans
};

struct ReplayReport {
  bool agree = true;
  std::optional<Divergence> divergence;
  size_t events = 0;    // events replayed
  size_t compares = 0;  // comparison points
  std::vector<LaneResult> lanes;
  // Final digest of every running request's live state (lane 0), request -> digest.
  std::vector<std::pair<uint64_t, uint64_t>> final_digests;
};

// Throws InputError ("FILE:LINE: message") for a trace the policy refuses.
ReplayReport replay(const trace::Trace& trace, const SimOptions& options);

PoolConfig pool_config(const trace::Header& header);

// The policy's plan for one trace event: the single mapping from trace events to scheduler
// operations, shared by replay() and the dump (sim/dump.h) so that both drive a lane alike.
// Throws InputError (without a location) for an operation the policy refuses.
Plan plan_for(PoolPolicy& policy, const trace::Event& event);

}  // namespace specstate::sim
