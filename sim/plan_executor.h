// Runs a Plan (core/strategy/plan.h) on a backend. Swapped-out states live in a SwapSpace on the
// host, one per lane, keyed by request: the lane's business, not the backend's (a backend knows
// rows, never requests).
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "backends/state_backend.h"
#include "core/strategy/plan.h"
#include "sim/handoff.h"

namespace specstate::sim {

struct SwapSpace {
  std::map<uint64_t, RowBytes> saved;      // request -> state (W-1 conv columns + SSM), all layers
  std::map<uint64_t, int32_t> saved_from;  // request -> the SSM row it was read from (reports)
  std::map<uint64_t, uint64_t> digests;    // request -> digest_state of the saved state
  // The host tier of the prefix cache (offload, restore): slot -> state, and its digest.
  std::map<int32_t, RowBytes> slots;
  std::map<int32_t, uint64_t> slot_digests;
  // The prefill instance of handoffs (made at the first one; lanes of a replay share one).
  std::shared_ptr<HandoffSender> sender;
};

void execute(const Plan& plan, StateBackend& backend, SwapSpace& swap);

}  // namespace specstate::sim
