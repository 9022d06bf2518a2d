// A plan: the backend calls one scheduler operation needs, in order, as plain data. The policy
// (core/strategy/pool_policy.h) produces plans; sim/plan_executor.h runs them on any
// backend. Each task names the request it acts for, so a checker can attribute every write.
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "core/primitives.h"

namespace specstate {

inline constexpr uint64_t kPaddingRequest = ~uint64_t{0};

// Calls that hold tasks keep one request per task; add() appends both.
struct PrefillCall {
  std::vector<PrefillTask> tasks;
  std::vector<uint64_t> requests;  // per task
  void add(const PrefillTask& task, uint64_t request) {
    tasks.push_back(task);
    requests.push_back(request);
  }
};

// A step's CUDA-graph padding is a count: `tasks` holds one padding task standing for all of
// them (every padding row runs the same task), so a step costs memory by its batch, never by
// its padding (a trace may carry 2^24 padding rows).
struct VerifyCall {
  VerifyMode mode = VerifyMode::kStateRows;
  std::vector<VerifyTask> tasks;   // batch order, then one padding task when padding_rows > 0
  std::vector<uint64_t> requests;  // per task (kPaddingRequest for padding)
  int32_t padding_rows = 0;        // padding rows of the step, all run as the one padding task
  void add(const VerifyTask& task, uint64_t request) {
    tasks.push_back(task);
    requests.push_back(request);
  }
};

struct ReplayCall {
  std::vector<ReplayTask> tasks;
  std::vector<uint64_t> requests;
  void add(const ReplayTask& task, uint64_t request) {
    tasks.push_back(task);
    requests.push_back(request);
  }
};

// A tree verify's accepted path moved to the front of its payload span, per request.
struct GatherCall {
  std::vector<PayloadGather> gathers;
  std::vector<uint64_t> requests;
  void add(const PayloadGather& gather, uint64_t request) {
    gathers.push_back(gather);
    requests.push_back(request);
  }
};

struct CopyCall {
  std::vector<RowCopy> copies;
  std::vector<uint64_t> requests;
  void add(const RowCopy& copy, uint64_t request) {
    copies.push_back(copy);
    requests.push_back(request);
  }
};

// The host-side calls below are host transfers, which wait for the device anyway: a guard on
// them (overlap scheduling, core/primitives.h) is evaluated when they run.

// Save the state at `loc` to host memory under the request's id (retract).
struct SwapOutCall {
  uint64_t request = 0;
  StateLoc loc;
  Guard guard;
};

// Write the request's saved state into `row` (resume); the saved copy is dropped.
struct SwapInCall {
  uint64_t request = 0;
  int32_t row = kNoRow;
  Guard guard;
};

// Drop the request's saved state (finish of a retracted request: it is never swapped in).
struct DropSavedCall {
  uint64_t request = 0;
  Guard guard;
};

// The accepted counts of the step just run, written into the device's per-request-row table
// (StateBackend::set_accepted), as an engine's sampler leaves them: only overlap scheduling
// emits it, between a step's verify and its post-accept calls.
struct AcceptCall {
  std::vector<AcceptedCount> counts;
};

// Set every byte of each row (all layers, conv and SSM) to `byte`: byte 0 is the zero state.
// Only fault injection (verify-as-extend) emits it.
struct FillCall {
  std::vector<int32_t> rows;
  std::vector<uint64_t> requests;  // per row
  std::vector<Guard> guards;       // per row
  uint8_t byte = 0;
  void add(int32_t row, uint64_t request) {
    rows.push_back(row);
    requests.push_back(request);
    guards.emplace_back();
  }
};

using PlanCall = std::variant<PrefillCall, VerifyCall, ReplayCall, GatherCall, CopyCall,
                              SwapOutCall, SwapInCall, FillCall, DropSavedCall, AcceptCall>;
using Plan = std::vector<PlanCall>;

}  // namespace specstate
