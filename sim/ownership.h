// Row ownership as the trace and the strategy layout give it, stated independently of the
// policy's plans: which rows a task acting for a request may write during one event.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_set>

#include "core/strategy/plan.h"
#include "core/strategy/strategy.h"
#include "core/trace/events.h"

namespace specstate::sim {

class OwnershipChecker {
 public:
  explicit OwnershipChecker(const StrategyLayout& layout) : layout_(layout) {}

  // Call before running the event's plan: learns the rows the event hands out.
  void begin_event(const trace::Event& event);
  // The first write in `plan` to a row the acting request does not own, as a message; or none.
  std::optional<std::string> check(const Plan& plan) const;
  // Call once the event's plan has been checked: releases what the event frees.
  void end_event(const trace::Event& event);

 private:
  struct Rows {
    int32_t req_row = -1;
    int32_t working_row = -1;
  };
  // Whether the protocol gives `row` to `request` in this event: its working row, the
  // strategy's rows of its request row, the track rows the event names for it; to the host tier
  // (kHostTierRequest) the row of a restore in this event or the one before. Costs O(T),
  // whatever the number of track rows.
  bool may_write(uint64_t request, int32_t row) const;
  std::optional<std::string> check_write(uint64_t request, int32_t row, const char* what) const;
  // Payload slots belong to a request through its request row (replay: 1, deferred: 2).
  std::optional<std::string> check_slot_write(uint64_t request, int32_t slot) const;
  // ", the working row of request N" when a running request owns `row`, else "".
  std::string owner_of(int32_t row) const;

  const StrategyLayout& layout_;
  std::map<uint64_t, Rows> rows_;                           // running requests
  std::map<uint64_t, std::unordered_set<int32_t>> tracks_;  // track rows the event names
  int32_t last_restore_row_ = -1;  // the previous event's restore row (its transfer may land now)
};

}  // namespace specstate::sim
