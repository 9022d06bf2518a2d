// The recurrences a layer's state may follow, and what each makes of a geometry.
//
// A recurrence is a kind of linear-attention layer whose per-request state the strategies keep:
// a conv window over its q | k | v channels and a [K, V] matrix per value head, advanced per token
// by a gated delta rule. What differs between recurrences is named here, once, and everything
// that sizes a state or a stored token (ModelGeometry, PoolShape, num::PayloadToken) reads it from
// the entry; the step that runs a recurrence is each backend's, chosen by a switch over the kind
// (-Werror=switch lists them). docs/strategies.md, "What a seventh strategy, or a second
// recurrence, touches", says what a second one adds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace specstate {

enum class RecurrenceKind : uint8_t { kGatedDeltaNet, kKimiDeltaAttention };

// How many decay values a token has per value head: one scalar that scales the whole [K, V]
// state (Gated DeltaNet: S = alpha S), or one per key channel that scales row i by alpha_i
// (S = Diag(alpha) S).
enum class DecayShape : uint8_t { kPerHead, kPerKeyChannel };

struct RecurrenceInfo {
  RecurrenceKind kind = RecurrenceKind::kGatedDeltaNet;
  std::string_view name;          // in trace headers, `presets` and reports: "gated-deltanet"
  std::string_view abbreviation;  // in prose: "GDN"
  DecayShape decay = DecayShape::kPerHead;

  // Decay values per value head and token for head dimension K.
  int32_t decay_values(int32_t head_k_dim) const {
    return decay == DecayShape::kPerHead ? 1 : head_k_dim;
  }
};

const RecurrenceInfo& recurrence_info(RecurrenceKind kind);
std::string_view to_string(RecurrenceKind kind);
const std::vector<RecurrenceKind>& all_recurrences();
// The recurrence of that name, if any.
std::optional<RecurrenceKind> find_recurrence(std::string_view name);
// "gated-deltanet, ...": every recurrence's name in table order, for messages.
std::string recurrence_names_text();

}  // namespace specstate
