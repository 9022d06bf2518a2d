#include "sim/ownership.h"

#include <type_traits>
#include <variant>

namespace specstate::sim {

void OwnershipChecker::begin_event(const trace::Event& event) {
  tracks_.clear();
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
        }
      },
      event);
}

void OwnershipChecker::end_event(const trace::Event& event) {
  if (const auto* r = std::get_if<trace::Retract>(&event)) rows_.erase(r->request);
  if (const auto* f = std::get_if<trace::Finish>(&event)) rows_.erase(f->request);
}

bool OwnershipChecker::may_write(uint64_t request, int32_t row) const {
  if (auto it = tracks_.find(request); it != tracks_.end() && it->second.count(row)) return true;
  auto it = rows_.find(request);
  if (it == rows_.end()) return false;
  const Rows& r = it->second;
  if (row == r.working_row) return true;
  const int32_t T = layout_.config.tokens_per_verify;
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
    case StrategyKind::kDeferred:
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
  if (row == kNoRow) return std::nullopt;
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
  if (slot == kNoRow) return std::nullopt;
  if (request == kPaddingRequest) {
    return "a padding task writes payload slot " + std::to_string(slot);
  }
  auto it = rows_.find(request);
  const int32_t buffers = layout_.kind == StrategyKind::kDeferred ? 2
                          : layout_.kind == StrategyKind::kReplay ? 1
                                                                  : 0;
  for (int32_t b = 0; it != rows_.end() && b < buffers; ++b) {
    if (layout_.payload_slot(it->second.req_row, b) == slot) return std::nullopt;
  }
  return "request " + std::to_string(request) + " writes payload slot " + std::to_string(slot) +
         ", which the protocol does not give it";
}

std::optional<std::string> OwnershipChecker::check(const Plan& plan) const {
  for (const PlanCall& call : plan) {
    std::optional<std::string> bad;
    auto first = [&](std::optional<std::string> m) {
      if (!bad && m) bad = std::move(m);
    };
    if (const auto* c = std::get_if<PrefillCall>(&call)) {
      for (size_t i = 0; i < c->tasks.size(); ++i) {
        for (const StateWrite& w : c->tasks[i].writes)
          first(check_write(c->requests[i], w.row, "prefill"));
      }
    } else if (const auto* c = std::get_if<VerifyCall>(&call)) {
      for (size_t i = 0; i < c->tasks.size(); ++i) {
        const VerifyTask& t = c->tasks[i];
        const uint64_t req = c->requests[i];
        if (req == kPaddingRequest && !t.from.is_none()) {
          first(std::string("a padding task reads row ") + std::to_string(t.from.ssm_row) +
                owner_of(t.from.ssm_row));
        }
        for (int32_t row : t.out_rows)
          first(check_write(req, row, "verify output"));
        if (t.pending.count > 0) first(check_write(req, t.pending.commit_row, "pending commit"));
        if (c->mode == VerifyMode::kWindow) first(check_write(req, t.from.conv_row, "conv window"));
        if (c->mode == VerifyMode::kPayload) first(check_slot_write(req, t.payload_slot));
      }
    } else if (const auto* c = std::get_if<ReplayCall>(&call)) {
      for (size_t i = 0; i < c->tasks.size(); ++i)
        first(check_write(c->requests[i], c->tasks[i].dst_row, "replay"));
    } else if (const auto* c = std::get_if<CopyCall>(&call)) {
      for (size_t i = 0; i < c->copies.size(); ++i)
        first(check_write(c->requests[i], c->copies[i].dst_row, "copy"));
    } else if (const auto* c = std::get_if<SwapInCall>(&call)) {
      first(check_write(c->request, c->row, "swap-in"));
    } else if (const auto* c = std::get_if<FillCall>(&call)) {
      for (size_t i = 0; i < c->rows.size(); ++i)
        first(check_write(c->requests[i], c->rows[i], "fill"));
    }
    if (bad) return bad;
  }
  return std::nullopt;
}

}  // namespace specstate::sim
