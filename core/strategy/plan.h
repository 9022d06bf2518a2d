// A plan: the backend calls one scheduler operation needs, in order, as plain data. The policy
// (core/strategy/pool_policy.h) produces plans; backends/plan_executor.h runs them on any
// backend. Each task names the request it acts for, so a checker can attribute every write.
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "core/primitives.h"

namespace specstate {

inline constexpr uint64_t kPaddingRequest = ~uint64_t{0};

struct PrefillCall {
  std::vector<PrefillTask> tasks;
  std::vector<uint64_t> requests;  // per task
};

struct VerifyCall {
  VerifyMode mode = VerifyMode::kStateRows;
  std::vector<VerifyTask> tasks;   // batch order, padding tasks last
  std::vector<uint64_t> requests;  // per task (kPaddingRequest for padding)
};

struct ReplayCall {
  std::vector<ReplayTask> tasks;
  std::vector<uint64_t> requests;
};

struct CopyCall {
  std::vector<RowCopy> copies;
  std::vector<uint64_t> requests;
};

// Save the state at `loc` to host memory under the request's id (retract).
struct SwapOutCall {
  uint64_t request = 0;
  StateLoc loc;
};

// Write the request's saved state into `row` (resume); the saved copy is dropped.
struct SwapInCall {
  uint64_t request = 0;
  int32_t row = kNoRow;
};

// Set every byte of each row (all layers, conv and SSM) to `byte`: byte 0 is the zero state.
// Only fault injection (verify-as-extend) emits it.
struct FillCall {
  std::vector<int32_t> rows;
  std::vector<uint64_t> requests;  // per row
  uint8_t byte = 0;
};

using PlanCall =
    std::variant<PrefillCall, VerifyCall, ReplayCall, CopyCall, SwapOutCall, SwapInCall, FillCall>;
using Plan = std::vector<PlanCall>;

}  // namespace specstate
