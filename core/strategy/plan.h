// A plan: the backend calls one scheduler operation needs, in order, as plain data. The policy
// (core/strategy/pool_policy.h) produces plans; sim/plan_executor.h runs them on any
// backend. Each task names the request it acts for, so a checker can attribute every write.
#pragma once

#include <concepts>
#include <cstdint>
#include <variant>
#include <vector>

#include "core/primitives.h"
#include "core/reslice.h"

namespace specstate {

inline constexpr uint64_t kPaddingRequest = ~uint64_t{0};
// What offload and restore transfers act for: the host tier of the prefix cache, no request.
inline constexpr uint64_t kHostTierRequest = ~uint64_t{0} - 1;

// A call of tasks (core/primitives.h) keeps one request per task; add() appends both. Every call
// of tasks has this shape, so that code over plans treats them alike (for_each_access,
// HostScheduler's guarding); a task carries its own guard.
template <class T>
struct TaskCall {
  using Task = T;
  std::vector<Task> tasks;
  std::vector<uint64_t> requests;  // per task
  void add(const Task& task, uint64_t request) {
    tasks.push_back(task);
    requests.push_back(request);
  }
};

struct PrefillCall : TaskCall<PrefillTask> {};

// A step's tasks in batch order, then one padding task (kPaddingRequest) when padding_rows > 0.
// CUDA-graph padding is a count: the one padding task stands for all of its rows (every padding
// row runs the same task), so a step costs memory by its batch, never by its padding (a trace
// may carry 2^24 padding rows).
struct VerifyCall : TaskCall<VerifyTask> {
  VerifyMode mode = VerifyMode::kStateRows;
  int32_t padding_rows = 0;
};

struct ReplayCall : TaskCall<ReplayTask> {};

// A tree verify's accepted path moved to the front of its payload span, per request.
struct GatherCall : TaskCall<PayloadGather> {};

struct CopyCall : TaskCall<RowCopy> {};

// Set every byte of each row (all layers, conv and SSM) to `byte`: byte 0 is the zero state.
// Only fault injection (verify-as-extend) emits it.
struct FillCall : TaskCall<RowFill> {
  uint8_t byte = 0;
};

// A call of the one task `task`, acting for `request`.
template <class Call, class Task>
Call call_of(const Task& task, uint64_t request) {
  Call call;
  call.add(task, request);
  return call;
}

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

// Save the state of cache row `row` (at offset 0: a snapshot, in every strategy's layout) into
// host slot `slot`, replacing what the slot held (an offload event).
struct OffloadCall {
  int32_t row = kNoRow;
  int32_t slot = -1;
};

// Write host slot `slot`'s state into `row` at offset 0 (a restore event), layers
// first_layer .. first_layer + layers - 1 (layers -1: all of them, as a restore does unless a
// fault splits its transfer); the slot keeps it.
struct RestoreCall {
  int32_t slot = -1;
  int32_t row = kNoRow;
  int32_t first_layer = 0;
  int32_t layers = -1;
};

// Write into `row` at offset 0 the state after request `request`'s first `length` tokens, as the
// prefill instance of a prefill/decode handoff computed it at tensor-parallel degree `from_tp`
// and this rank receives it, its conv window cut as `conv` says (core/reslice.h; kContiguous only
// under a fault). The executor plays the sending instance (sim/handoff.h).
struct HandoffCall {
  uint64_t request = 0;
  int64_t length = 0;
  int32_t from_tp = 1;
  int32_t row = kNoRow;
  ConvSlicing conv = ConvSlicing::kByHeads;
};

// The accepted counts of the step just run, written into the device's per-request-row table
// (StateBackend::set_accepted), as an engine's sampler leaves them: only overlap scheduling
// emits it, between a step's verify and its post-accept calls.
struct AcceptCall {
  std::vector<AcceptedCount> counts;
};

using PlanCall =
    std::variant<PrefillCall, VerifyCall, ReplayCall, GatherCall, CopyCall, SwapOutCall, SwapInCall,
                 FillCall, DropSavedCall, AcceptCall, OffloadCall, RestoreCall, HandoffCall>;
using Plan = std::vector<PlanCall>;

// The two shapes of call: tasks with one request each, or one request's host transfer.
template <class C>
concept TasksCall = std::derived_from<C, TaskCall<typename C::Task>>;
template <class C>
concept RequestCall = requires(C c) {
  { c.request } -> std::convertible_to<uint64_t>;
  { c.guard } -> std::convertible_to<Guard>;
};

// One lambda per alternative for std::visit, which refuses to compile a visit that leaves a
// call type unhandled: every visitor of PlanCall is exhaustive.
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
// Clang 14 (the clang preset) has no class template argument deduction for aggregates.
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace specstate
