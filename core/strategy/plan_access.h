// Every row and payload slot a plan call reads or writes, with the request the task acts for:
// the one enumeration behind the ownership check (sim/ownership.h), the storage a lane needs
// (sim/storage.h) and the rows an event changed (the simulator's per-event comparison).
#pragma once

#include <cstdint>
#include <type_traits>
#include <variant>

#include "core/strategy/plan.h"

namespace specstate {

struct PlanAccess {
  enum Kind : uint8_t { kRead, kWrite } kind;
  enum Unit : uint8_t { kRow, kSlot } unit;
  int32_t index;     // never kNoRow: absent rows and slots are not reported
  uint64_t request;  // the task's request (kPaddingRequest for padding)
  const char* what;  // "prefill", "verify output", ... (for reports)
};

// Calls f(PlanAccess) for each access of `call`, task by task.
template <class F>
void for_each_access(const PlanCall& call, F&& f) {
  auto visit = [&](PlanAccess::Kind kind, PlanAccess::Unit unit, int32_t index, uint64_t request,
                   const char* what) {
    if (index != kNoRow) f(PlanAccess{kind, unit, index, request, what});
  };
  auto read_loc = [&](const StateLoc& loc, uint64_t request, const char* what) {
    visit(PlanAccess::kRead, PlanAccess::kRow, loc.ssm_row, request, what);
    if (loc.conv_row != loc.ssm_row)
      visit(PlanAccess::kRead, PlanAccess::kRow, loc.conv_row, request, what);
  };
  std::visit(
      [&](const auto& c) {
        using C = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<C, PrefillCall>) {
          for (size_t i = 0; i < c.tasks.size(); ++i) {
            if (!c.tasks[i].from_zero) read_loc(c.tasks[i].from, c.requests[i], "prefill source");
            for (const StateWrite& w : c.tasks[i].writes)
              visit(PlanAccess::kWrite, PlanAccess::kRow, w.row, c.requests[i], "prefill");
          }
        } else if constexpr (std::is_same_v<C, VerifyCall>) {
          for (size_t i = 0; i < c.tasks.size(); ++i) {
            const VerifyTask& t = c.tasks[i];
            const uint64_t req = c.requests[i];
            if (t.from.is_none()) continue;  // padding: nothing read or written
            read_loc(t.from, req, "verify source");
            if (t.pending.count > 0) {
              visit(PlanAccess::kRead, PlanAccess::kSlot, t.pending.payload_slot, req,
                    "pending replay");
              visit(PlanAccess::kWrite, PlanAccess::kRow, t.pending.commit_row, req,
                    "pending commit");
            }
            for (int32_t row : t.out_rows)
              visit(PlanAccess::kWrite, PlanAccess::kRow, row, req, "verify output");
            if (c.mode == VerifyMode::kWindow)
              visit(PlanAccess::kWrite, PlanAccess::kRow, t.from.conv_row, req, "conv window");
            if (c.mode == VerifyMode::kPayload)
              visit(PlanAccess::kWrite, PlanAccess::kSlot, t.payload_slot, req, "payload");
          }
        } else if constexpr (std::is_same_v<C, ReplayCall>) {
          for (size_t i = 0; i < c.tasks.size(); ++i) {
            const ReplayTask& t = c.tasks[i];
            if (t.from.is_none()) continue;
            read_loc(t.from, c.requests[i], "replay source");
            visit(PlanAccess::kRead, PlanAccess::kSlot, t.payload_slot, c.requests[i], "replay");
            visit(PlanAccess::kWrite, PlanAccess::kRow, t.dst_row, c.requests[i], "replay");
          }
        } else if constexpr (std::is_same_v<C, CopyCall>) {
          for (size_t i = 0; i < c.copies.size(); ++i) {
            if (c.copies[i].src.is_none() || c.copies[i].dst_row == kNoRow) continue;
            read_loc(c.copies[i].src, c.requests[i], "copy source");
            visit(PlanAccess::kWrite, PlanAccess::kRow, c.copies[i].dst_row, c.requests[i], "copy");
          }
        } else if constexpr (std::is_same_v<C, SwapOutCall>) {
          read_loc(c.loc, c.request, "swap-out");
        } else if constexpr (std::is_same_v<C, SwapInCall>) {
          visit(PlanAccess::kWrite, PlanAccess::kRow, c.row, c.request, "swap-in");
        } else if constexpr (std::is_same_v<C, FillCall>) {
          for (size_t i = 0; i < c.rows.size(); ++i)
            visit(PlanAccess::kWrite, PlanAccess::kRow, c.rows[i], c.requests[i], "fill");
        }
        // DropSavedCall touches no row.
      },
      call);
}

}  // namespace specstate
