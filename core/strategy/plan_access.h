// Every row and payload slot a plan call reads or writes, with the request the task acts for
// (core/task_access.h per task): behind the ownership check (sim/ownership.h), the storage a lane
// needs (sim/storage.h) and the rows an event changed (the simulator's per-event comparison).
#pragma once

#include <cstdint>
#include <variant>

#include "core/strategy/plan.h"
#include "core/task_access.h"

namespace specstate {

struct PlanAccess {
  using Kind = TaskAccess::Kind;
  using Unit = TaskAccess::Unit;
  static constexpr Kind kRead = TaskAccess::kRead, kWrite = TaskAccess::kWrite;
  static constexpr Unit kRow = TaskAccess::kRow, kSlot = TaskAccess::kSlot;
  Kind kind;
  Unit unit;
  int32_t index;     // never kNoRow: absent rows and slots are not reported
  uint64_t request;  // the task's request (kPaddingRequest for padding)
  const char* what;  // "prefill", "verify output", ... (for reports)
};

// Calls f(PlanAccess) for each access of `call`, task by task (core/task_access.h).
template <class F>
void for_each_access(const PlanCall& call, F&& f) {
  auto as = [&](uint64_t request) {
    return [&f, request](const TaskAccess& a) {
      f(PlanAccess{a.kind, a.unit, a.index, request, a.what});
    };
  };
  auto transfer = [&](PlanAccess::Kind kind, int32_t row, uint64_t request, const char* what) {
    if (row != kNoRow) f(PlanAccess{kind, PlanAccess::kRow, row, request, what});
  };
  std::visit(
      Overloaded{
          [&](const VerifyCall& c) {
            for (size_t i = 0; i < c.tasks.size(); ++i)
              for_each_access(c.mode, c.tasks[i], as(c.requests[i]));
          },
          [&](const TasksCall auto& c) {
            for (size_t i = 0; i < c.tasks.size(); ++i)
              for_each_access(c.tasks[i], as(c.requests[i]));
          },
          [&](const SwapOutCall& c) {
            transfer(PlanAccess::kRead, c.loc.ssm_row, c.request, "swap-out");
            if (c.loc.conv_row != c.loc.ssm_row)
              transfer(PlanAccess::kRead, c.loc.conv_row, c.request, "swap-out");
          },
          [&](const SwapInCall& c) { transfer(PlanAccess::kWrite, c.row, c.request, "swap-in"); },
          [](const DropSavedCall&) {},  // host memory only
          [](const AcceptCall&) {},     // the table of counts, not rows
          [&](const OffloadCall& c) {
            transfer(PlanAccess::kRead, c.row, kHostTierRequest, "offload");
          },
          [&](const RestoreCall& c) {
            transfer(PlanAccess::kWrite, c.row, kHostTierRequest, "restore");
          },
          [&](const HandoffCall& c) {  // the receiving transfer writes a cache row, as a restore
            transfer(PlanAccess::kWrite, c.row, kHostTierRequest, "handoff");
          },
      },
      call);
}

}  // namespace specstate
