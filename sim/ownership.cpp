#include "sim/ownership.h"

#include <type_traits>
#include <variant>

#include "core/strategy/plan_access.h"

namespace specstate::sim {

void OwnershipChecker::begin_event(const trace::Event& event) {
  tracks_.clear();
  // A restore's transfer writes its row in the restore event and may land in the next one.
  if (last_restore_row_ >= 0) tracks_[kHostTierRequest].insert(last_restore_row_);
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, trace::Extend>) {
          if (!rows_.count(e.request)) rows_[e.request] = {e.req_row, e.working_row};
          for (const trace::TrackWrite& t : e.track)
            tracks_[e.request].insert(t.row);
        } else if constexpr (std::is_same_v<E, trace::Verify> || std::is_same_v<E, trace::Decode>) {
          for (const auto& entry : e.batch) {
            if (entry.track) tracks_[entry.request].insert(entry.track->row);
          }
        } else if constexpr (std::is_same_v<E, trace::Resume>) {
          rows_[e.request] = {e.req_row, e.working_row};
        } else if constexpr (std::is_same_v<E, trace::Restore> ||
                             std::is_same_v<E, trace::Handoff>) {
          tracks_[kHostTierRequest].insert(e.row);  // the cache row a transfer from afar writes
        }
      },
      event);
}

void OwnershipChecker::end_event(const trace::Event& event) {
  const auto* restore = std::get_if<trace::Restore>(&event);
  last_restore_row_ = restore ? restore->row : -1;
  if (const auto* r = std::get_if<trace::Retract>(&event)) rows_.erase(r->request);
  if (const auto* f = std::get_if<trace::Finish>(&event)) rows_.erase(f->request);
}

bool OwnershipChecker::may_write(uint64_t request, int32_t row) const {
  if (auto it = tracks_.find(request); it != tracks_.end() && it->second.count(row)) return true;
  auto it = rows_.find(request);
  if (it == rows_.end()) return false;
  const Rows& r = it->second;
  if (row == r.working_row) return true;
  const int32_t T = layout_.config.verify_tokens();  // T, or a tree's nodes
  switch (layout_.kind) {
    case StrategyKind::kScatter:
      for (int j = 0; j < T; ++j) {
        if (row == layout_.scratch_row(r.working_row, j)) return true;
      }
      return false;
    case StrategyKind::kInline:
    case StrategyKind::kWindow:
      for (int j = 0; j + 1 < T; ++j) {
        if (row == layout_.draft_row(r.req_row, j)) return true;
      }
      return false;
    case StrategyKind::kPaged:
      for (int j = 0; j < T; ++j) {
        if (row == layout_.paged_block(r.req_row, j)) return true;
      }
      return false;
    case StrategyKind::kDeferred:
    case StrategyKind::kRing:
      return row == layout_.inspect_row();
    case StrategyKind::kReplay:
      return false;
  }
  return false;
}

std::string OwnershipChecker::owner_of(int32_t row) const {
  for (const auto& [request, rows] : rows_) {
    if (rows.working_row == row) return ", the working row of request " + std::to_string(request);
  }
  return "";
}

std::optional<std::string> OwnershipChecker::check_write(uint64_t request, int32_t row,
                                                         const char* what) const {
  if (request == kPaddingRequest) {
    return std::string("a padding task writes row ") + std::to_string(row) + " (" + what + ")" +
           owner_of(row);
  }
  if (may_write(request, row)) return std::nullopt;
  return "request " + std::to_string(request) + " writes row " + std::to_string(row) + " (" + what +
         "), which the protocol does not give it";
}

std::optional<std::string> OwnershipChecker::check_slot_write(uint64_t request,
                                                              int32_t slot) const {
  if (request == kPaddingRequest) {
    return "a padding task writes payload slot " + std::to_string(slot);
  }
  auto it = rows_.find(request);
  const int32_t buffers = strategy_info(layout_.kind).payload_buffers;
  for (int32_t b = 0; it != rows_.end() && b < buffers; ++b) {
    if (layout_.payload_slot(it->second.req_row, b) == slot) return std::nullopt;
  }
  return "request " + std::to_string(request) + " writes payload slot " + std::to_string(slot) +
         ", which the protocol does not give it";
}

std::optional<std::string> OwnershipChecker::check(const Plan& plan) const {
  std::optional<std::string> bad;
  for (const PlanCall& call : plan) {
    for_each_access(call, [&](const PlanAccess& a) {
      if (bad) return;
      if (a.kind == PlanAccess::kRead) {
        if (a.request == kPaddingRequest && a.unit == PlanAccess::kRow) {
          bad = "a padding task reads row " + std::to_string(a.index) + owner_of(a.index);
        }
        return;
      }
      bad = a.unit == PlanAccess::kRow ? check_write(a.request, a.index, a.what)
                                       : check_slot_write(a.request, a.index);
    });
    if (bad) return bad;
  }
  return std::nullopt;
}

}  // namespace specstate::sim
