// Every row and payload slot one primitive task names (core/primitives.h): the one enumeration
// behind the backends' race checks (backends/state_backend.cpp), the compact backend's remapping
// of rows (backends/compact_backend.cpp) and, through core/strategy/plan_access.h, the ownership
// check, a lane's storage and the rows an event changed. A row field added to a task and given
// here is checked, stored and remapped alike.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/primitives.h"

namespace specstate {

struct TaskAccess {
  enum Kind : uint8_t { kRead, kWrite } kind;
  enum Unit : uint8_t { kRow, kSlot } unit;
  int32_t index;     // never kNoRow: absent rows and slots are not reported
  const char* what;  // "prefill", "verify output", ... (for reports)
};

// What a task does with one of its row or slot fields, as for_each_row gives it.
struct RowUse {
  TaskAccess::Kind kind;
  TaskAccess::Unit unit;
  const char* what;
  // False for a state's conv row that is its SSM row: one row, one access (the SSM row's).
  bool is_access = true;
  // False for a field given a second time (window mode writes the source's conv row), so that
  // code changing the fields changes each once.
  bool first_use = true;
};

// `Task` is the task type `T`, const or not.
template <class Task, class T>
concept TaskOf = std::is_same_v<std::remove_const_t<Task>, T>;

namespace detail {

template <class Loc, class F>
void loc_rows(Loc& loc, TaskAccess::Kind kind, const char* what, F& f) {
  const bool one_row = loc.conv_row == loc.ssm_row;  // before f may change either
  f(loc.ssm_row, RowUse{kind, TaskAccess::kRow, what});
  f(loc.conv_row, RowUse{kind, TaskAccess::kRow, what, !one_row});
}

}  // namespace detail

// Calls f(index, use) for each row and slot field of a task, in the order the checks report
// them; index is an int32_t& into the task (const when the task is). Fields a task does not use
// are not given: a source when it starts from zero, everything of a padding task (from = none)
// or of a copy without source or destination, pending fields without pending tokens, the
// payload slot outside kPayload mode. Given fields may hold kNoRow.
template <TaskOf<PrefillTask> Task, class F>
void for_each_row(Task& t, F&& f) {
  if (!t.from_zero) detail::loc_rows(t.from, TaskAccess::kRead, "prefill source", f);
  for (auto& w : t.writes)
    f(w.row, RowUse{TaskAccess::kWrite, TaskAccess::kRow, "prefill"});
}

template <TaskOf<VerifyTask> Task, class F>
void for_each_row(VerifyMode mode, Task& t, F&& f) {
  if (t.from.is_none()) return;
  detail::loc_rows(t.from, TaskAccess::kRead, "verify source", f);
  if (t.pending.count > 0) {
    f(t.pending.payload_slot, RowUse{TaskAccess::kRead, TaskAccess::kSlot, "pending replay"});
    f(t.pending.commit_row, RowUse{TaskAccess::kWrite, TaskAccess::kRow, "pending commit"});
  }
  for (auto& row : t.out_rows)
    f(row, RowUse{TaskAccess::kWrite, TaskAccess::kRow, "verify output"});
  if (mode == VerifyMode::kWindow) {
    f(t.from.conv_row,
      RowUse{TaskAccess::kWrite, TaskAccess::kRow, "conv window", true, /*first_use=*/false});
  }
  if (mode == VerifyMode::kPayload)
    f(t.payload_slot, RowUse{TaskAccess::kWrite, TaskAccess::kSlot, "payload"});
}

template <TaskOf<ReplayTask> Task, class F>
void for_each_row(Task& t, F&& f) {
  if (t.from.is_none()) return;
  detail::loc_rows(t.from, TaskAccess::kRead, "replay source", f);
  f(t.payload_slot, RowUse{TaskAccess::kRead, TaskAccess::kSlot, "replay"});
  f(t.dst_row, RowUse{TaskAccess::kWrite, TaskAccess::kRow, "replay"});
}

// A gather moves entries inside its slot: it reads and writes the slot.
template <TaskOf<PayloadGather> Task, class F>
void for_each_row(Task& g, F&& f) {
  f(g.slot, RowUse{TaskAccess::kWrite, TaskAccess::kSlot, "payload gather"});
}

template <TaskOf<RowCopy> Task, class F>
void for_each_row(Task& c, F&& f) {
  if (c.src.is_none() || c.dst_row == kNoRow) return;
  detail::loc_rows(c.src, TaskAccess::kRead, "copy source", f);
  f(c.dst_row, RowUse{TaskAccess::kWrite, TaskAccess::kRow, "copy"});
}

template <TaskOf<RowFill> Task, class F>
void for_each_row(Task& t, F&& f) {
  f(t.row, RowUse{TaskAccess::kWrite, TaskAccess::kRow, "fill"});
}

namespace detail {

// for_each_row's accesses of real rows and slots, as TaskAccess.
template <class F>
auto accesses(F& f) {
  return [&f](int32_t index, const RowUse& use) {
    if (use.is_access && index != kNoRow) f(TaskAccess{use.kind, use.unit, index, use.what});
  };
}

}  // namespace detail

// Calls f(TaskAccess) for each access of a task (a verify task: of its call's mode).
template <class Task, class F>
requires requires(const Task& t) {
  for_each_row(t, [](int32_t, const RowUse&) {});
}
void for_each_access(const Task& t, F&& f) {
  for_each_row(t, detail::accesses(f));
}

template <class F>
void for_each_access(VerifyMode mode, const VerifyTask& t, F&& f) {
  for_each_row(mode, t, detail::accesses(f));
}

}  // namespace specstate
