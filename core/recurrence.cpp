#include "core/recurrence.h"

#include "core/errors.h"

namespace specstate {
namespace {

// One entry per RecurrenceKind: a kind without one does not compile (the switch below).
constexpr RecurrenceInfo recurrence_entry(RecurrenceKind kind) {
  switch (kind) {
    case RecurrenceKind::kGatedDeltaNet:
      return {kind, "gated-deltanet", "GDN", DecayShape::kPerHead};
    case RecurrenceKind::kKimiDeltaAttention:  // Kimi Linear, Kimi-K3 (docs/numerics.md)
      return {kind, "kimi-delta-attention", "KDA", DecayShape::kPerKeyChannel};
  }
  return {};
}

}  // namespace

const std::vector<RecurrenceKind>& all_recurrences() {
  static const std::vector<RecurrenceKind> kinds = {RecurrenceKind::kGatedDeltaNet,
                                                    RecurrenceKind::kKimiDeltaAttention};
  return kinds;
}

const RecurrenceInfo& recurrence_info(RecurrenceKind kind) {
  static const std::vector<RecurrenceInfo> table = [] {
    std::vector<RecurrenceInfo> t;
    for (RecurrenceKind k : all_recurrences()) {
      SPECSTATE_ASSERT(size_t(k) == t.size(), "all_recurrences lists the kinds in order");
      t.push_back(recurrence_entry(k));
    }
    return t;
  }();
  SPECSTATE_ASSERT(size_t(kind) < table.size(), "a recurrence kind in all_recurrences");
  return table[size_t(kind)];
}

std::string_view to_string(RecurrenceKind kind) {
  return recurrence_info(kind).name;
}

std::optional<RecurrenceKind> find_recurrence(std::string_view name) {
  for (RecurrenceKind k : all_recurrences())
    if (recurrence_info(k).name == name) return k;
  return std::nullopt;
}

std::string recurrence_names_text() {
  std::string text;
  for (RecurrenceKind k : all_recurrences())
    text += (text.empty() ? "" : ", ") + std::string(recurrence_info(k).name);
  return text;
}

}  // namespace specstate
