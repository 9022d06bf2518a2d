// The lanes `specstate replay` runs for its lane flags: one set of rules for replay and for the
// commands that must run the same lanes to see the same divergence (minimize).
#pragma once

#include <string>
#include <vector>

#include "backends/compact_backend.h"
#include "core/strategy/strategy.h"
#include "core/trace/events.h"
#include "sim/simulator.h"

namespace specstate::cli {

struct LaneFlags {
  std::string backends = "cpu";    // --backend: a comma list
  std::string strategies = "all";  // --strategy: a comma list or all
  std::string schedule = "trace";  // --schedule: trace, sync, overlap or both
  std::string inject;              // --inject: a fault name, empty for none
};

// check_backend_flag() for --backend's list: before anything is printed.
void check_lane_backends(const LaneFlags& flags);

// Every backend x schedule x strategy; "all" leaves window out for a trace of draft trees. A
// fault goes into every lane whose strategy (and, for an overlap fault, schedule) it concerns,
// and a clean synchronous copy of the first lane goes first when that one is faulty, so that
// there is always a correct reference. Throws InputError for a bad flag or a fault that
// concerns none of the lanes.
std::vector<sim::LaneSpec> make_replay_lanes(const LaneFlags& flags, const trace::Header& header);

// Throws InputError("FILE:HEADER_LINE: ...") when a lane cannot run the trace's pool (the ring's
// parameters against T, the backend's geometry, memory), before anything is allocated. Returns
// each lane's storage (sim::lane_storage), which SimOptions::storage takes.
std::vector<StoredRows> check_replay_lanes(const trace::Trace& trace,
                                           const std::vector<sim::LaneSpec>& lanes,
                                           const PoolConfig& config);

}  // namespace specstate::cli
