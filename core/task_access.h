// Every row and payload slot one primitive task reads or writes (core/primitives.h): the one
// enumeration behind the backends' race checks (backends/state_backend.cpp) and, through
// core/strategy/plan_access.h, the ownership check, a lane's storage and the rows an event
// changed.
#pragma once

#include <cstdint>

#include "core/primitives.h"

namespace specstate {

struct TaskAccess {
  enum Kind : uint8_t { kRead, kWrite } kind;
  enum Unit : uint8_t { kRow, kSlot } unit;
  int32_t index;     // never kNoRow: absent rows and slots are not reported
  const char* what;  // "prefill", "verify output", ... (for reports)
};

namespace detail {

template <class F>
void visit_access(F& f, TaskAccess::Kind kind, TaskAccess::Unit unit, int32_t index,
                  const char* what) {
  if (index != kNoRow) f(TaskAccess{kind, unit, index, what});
}

template <class F>
void read_loc(F& f, const StateLoc& loc, const char* what) {
  visit_access(f, TaskAccess::kRead, TaskAccess::kRow, loc.ssm_row, what);
  if (loc.conv_row != loc.ssm_row) visit_access(f, TaskAccess::kRead, TaskAccess::kRow, loc.conv_row, what);
}

}  // namespace detail

template <class F>
void for_each_access(const PrefillTask& t, F&& f) {
  if (!t.from_zero) detail::read_loc(f, t.from, "prefill source");
  for (const StateWrite& w : t.writes)
    detail::visit_access(f, TaskAccess::kWrite, TaskAccess::kRow, w.row, "prefill");
}

// A padding task (from = none) reads and writes nothing.
template <class F>
void for_each_access(VerifyMode mode, const VerifyTask& t, F&& f) {
  if (t.from.is_none()) return;
  detail::read_loc(f, t.from, "verify source");
  if (t.pending.count > 0) {
    detail::visit_access(f, TaskAccess::kRead, TaskAccess::kSlot, t.pending.payload_slot,
                         "pending replay");
    detail::visit_access(f, TaskAccess::kWrite, TaskAccess::kRow, t.pending.commit_row,
                         "pending commit");
  }
  for (int32_t row : t.out_rows)
    detail::visit_access(f, TaskAccess::kWrite, TaskAccess::kRow, row, "verify output");
  if (mode == VerifyMode::kWindow)
    detail::visit_access(f, TaskAccess::kWrite, TaskAccess::kRow, t.from.conv_row, "conv window");
  if (mode == VerifyMode::kPayload)
    detail::visit_access(f, TaskAccess::kWrite, TaskAccess::kSlot, t.payload_slot, "payload");
}

template <class F>
void for_each_access(const ReplayTask& t, F&& f) {
  if (t.from.is_none()) return;
  detail::read_loc(f, t.from, "replay source");
  detail::visit_access(f, TaskAccess::kRead, TaskAccess::kSlot, t.payload_slot, "replay");
  detail::visit_access(f, TaskAccess::kWrite, TaskAccess::kRow, t.dst_row, "replay");
}

// A gather moves entries inside its slot: it reads and writes the slot.
template <class F>
void for_each_access(const PayloadGather& g, F&& f) {
  detail::visit_access(f, TaskAccess::kWrite, TaskAccess::kSlot, g.slot, "payload gather");
}

template <class F>
void for_each_access(const RowFill& t, F&& f) {
  detail::visit_access(f, TaskAccess::kWrite, TaskAccess::kRow, t.row, "fill");
}

template <class F>
void for_each_access(const RowCopy& c, F&& f) {
  if (c.src.is_none() || c.dst_row == kNoRow) return;
  detail::read_loc(f, c.src, "copy source");
  detail::visit_access(f, TaskAccess::kWrite, TaskAccess::kRow, c.dst_row, "copy");
}

}  // namespace specstate
