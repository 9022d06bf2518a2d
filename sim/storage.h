// The storage a lane needs for one trace: the rows and payload slots its plans name
// (backends/compact_backend.h keeps only those). `specstate footprint` still reports the
// engine's full layout; this is how the simulator stores it.
#pragma once

#include "backends/compact_backend.h"
#include "core/strategy/strategy.h"
#include "core/trace/events.h"
#include "sim/lane.h"

namespace specstate::sim {

// Runs `lane`'s policy alone over the trace (plans only: no backend, no state bytes) and
// collects every row and payload slot its plans read or write, plus the inspection row through
// which the comparisons read a deferred state. Stops at the first event the policy refuses: the
// replay reports that event, and nothing after it runs.
StoredRows lane_storage(const trace::Trace& trace, const LaneSpec& lane, const PoolConfig& config);

}  // namespace specstate::sim
