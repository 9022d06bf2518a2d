// The report of a replay as JSON (replay --json, demo --json): lanes with their backend,
// strategy and fault, the events and comparisons, the final digests, and a divergence with its
// fault, lanes, rows and elements as fields.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

#include "core/trace/events.h"
#include "sim/simulator.h"

namespace specstate::cli {

nlohmann::json replay_json(const trace::Trace& trace, const sim::ReplayReport& report,
                           const std::vector<sim::LaneSpec>& lanes,
                           const std::vector<int32_t>& layers, int threads);

}  // namespace specstate::cli
