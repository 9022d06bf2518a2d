// Every row and payload slot a plan call reads or writes, with the request the task acts for
// (core/task_access.h per task): behind the ownership check (sim/ownership.h), the storage a lane
// needs (sim/storage.h) and the rows an event changed (the simulator's per-event comparison).
#pragma once

#include <cstdint>
#include <type_traits>
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
  auto tasks = [&](const auto& list, const std::vector<uint64_t>& requests, auto&& each) {
    for (size_t i = 0; i < list.size(); ++i) {
      each(list[i], [&](const TaskAccess& a) {
        f(PlanAccess{a.kind, a.unit, a.index, requests[i], a.what});
      });
    }
  };
  auto one = [&](PlanAccess::Kind kind, int32_t row, uint64_t request, const char* what) {
    if (row != kNoRow) f(PlanAccess{kind, PlanAccess::kRow, row, request, what});
  };
  std::visit(
      [&](const auto& c) {
        using C = std::decay_t<decltype(c)>;
        auto plain = [](const auto& task, auto&& g) { for_each_access(task, g); };
        if constexpr (std::is_same_v<C, PrefillCall> || std::is_same_v<C, ReplayCall>) {
          tasks(c.tasks, c.requests, plain);
        } else if constexpr (std::is_same_v<C, VerifyCall>) {
          tasks(c.tasks, c.requests,
                [&](const VerifyTask& t, auto&& g) { for_each_access(c.mode, t, g); });
        } else if constexpr (std::is_same_v<C, CopyCall>) {
          tasks(c.copies, c.requests, plain);
        } else if constexpr (std::is_same_v<C, GatherCall>) {
          tasks(c.gathers, c.requests, plain);
        } else if constexpr (std::is_same_v<C, SwapOutCall>) {
          one(PlanAccess::kRead, c.loc.ssm_row, c.request, "swap-out");
          if (c.loc.conv_row != c.loc.ssm_row)
            one(PlanAccess::kRead, c.loc.conv_row, c.request, "swap-out");
        } else if constexpr (std::is_same_v<C, SwapInCall>) {
          one(PlanAccess::kWrite, c.row, c.request, "swap-in");
        } else if constexpr (std::is_same_v<C, FillCall>) {
          for (size_t i = 0; i < c.rows.size(); ++i)
            one(PlanAccess::kWrite, c.rows[i], c.requests[i], "fill");
        } else {
          static_assert(std::is_same_v<C, DropSavedCall> || std::is_same_v<C, AcceptCall>,
                        "every plan call is enumerated");
        }
      },
      call);
}

}  // namespace specstate
