#include "sim/storage.h"

#include <algorithm>
#include <unordered_set>

#include "core/errors.h"
#include "core/strategy/host_scheduler.h"
#include "core/strategy/plan_access.h"

namespace specstate::sim {

StoredRows lane_storage(const trace::Trace& trace, const LaneSpec& lane, const PoolConfig& config) {
  HostScheduler policy(lane.strategy, config, lane.schedule, lane.fault);
  std::unordered_set<int32_t> rows, slots;
  if (policy.layout().inspect_rows > 0) rows.insert(policy.layout().inspect_row());
  for (const trace::Line& line : trace.events) {
    Plan plan;
    try {
      plan = plan_for(policy, line.event);
    } catch (const InputError&) {
      break;
    }
    for (const PlanCall& call : plan) {
      for_each_access(call, [&](const PlanAccess& a) {
        (a.unit == PlanAccess::kRow ? rows : slots).insert(a.index);
      });
    }
  }
  auto sorted = [](const std::unordered_set<int32_t>& set) {
    std::vector<int32_t> v(set.begin(), set.end());
    std::sort(v.begin(), v.end());
    return v;
  };
  return {sorted(rows), sorted(slots)};
}

}  // namespace specstate::sim
