#include "tools/replay_lanes.h"

#include <algorithm>

#include "backends/compact_backend.h"
#include "core/errors.h"
#include "core/strategy/fault.h"
#include "core/strategy/host_scheduler.h"
#include "sim/storage.h"
#include "tools/lane_checks.h"

namespace specstate::cli {
namespace {

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// --strategy's, where "all" leaves out those that do not run a trace of draft trees (asked for
// by name, they are refused at the header).
std::vector<StrategyKind> selected_strategies(const LaneFlags& flags, const trace::Header& h) {
  if (flags.strategies == "all") return strategies_running(h.tree_nodes);
  return parse_strategies(flags.strategies);
}

// "overlap=D" for any trace (its host waits where a step needs counts still in flight); "overlap"
// and "both" take the trace's depth (1 for a synchronous trace); "trace" is both for an overlap
// trace (its overlap lanes must agree with synchronous ones) and synchronous otherwise.
std::vector<Schedule> selected_schedules(const LaneFlags& flags, const trace::Header& h) {
  const std::string& s = flags.schedule;
  const Schedule traces = Schedule::overlap(std::max(1, h.overlap));
  if (s == "sync") return {Schedule::synchronous()};
  if (s == "overlap") return {traces};
  if (s == "both" || (s == "trace" && h.overlap > 0)) return {Schedule::synchronous(), traces};
  if (s == "trace") return {Schedule::synchronous()};
  if (s.starts_with("overlap=")) {
    const std::string digits = s.substr(8);
    const int32_t depth = digits.size() == 1 && digits[0] >= '1' && digits[0] <= '9'
                              ? digits[0] - '0'
                              : Schedule::kMaxDepth + 1;
    if (depth > Schedule::kMaxDepth) {
      throw InputError("--schedule " + s + ": the overlap depth must be 1.." +
                       std::to_string(Schedule::kMaxDepth));
    }
    return {Schedule::overlap(depth)};
  }
  throw InputError("--schedule must be trace, sync, overlap, overlap=D or both, got '" + s + "'");
}

std::string fault_scope(Fault fault) {
  std::string kinds;
  for (StrategyKind s : fault_info(fault).strategies)
    kinds += (kinds.empty() ? "" : ", ") + std::string(to_string(s));
  if (fault_info(fault).overlap)
    kinds += " with overlap scheduling (--schedule overlap or both, or an overlap trace)";
  return kinds;
}

}  // namespace

void check_lane_backends(const LaneFlags& flags) {
  check_backend_flag(split(flags.backends));
}

std::vector<sim::LaneSpec> make_replay_lanes(const LaneFlags& flags, const trace::Header& header) {
  const Fault fault = flags.inject.empty() ? Fault::kNone : parse_fault(flags.inject);
  const bool overlap_fault = fault != Fault::kNone && fault_info(fault).overlap;
  std::vector<sim::LaneSpec> lanes;
  bool injected = false;
  for (const std::string& backend : split(flags.backends)) {
    for (Schedule schedule : selected_schedules(flags, header)) {
      for (StrategyKind s : selected_strategies(flags, header)) {
        const bool concerns = fault_concerns(fault, s) && (!overlap_fault || schedule.is_overlap());
        injected = injected || concerns;
        lanes.push_back({backend, s, concerns ? fault : Fault::kNone, schedule});
      }
    }
  }
  if (fault == Fault::kNone) return lanes;
  if (!injected) {
    throw InputError("--inject " + flags.inject + " concerns only " + fault_scope(fault) +
                     ", which the lanes do not include");
  }
  if (lanes.front().fault != Fault::kNone) {
    sim::LaneSpec clean = lanes.front();
    clean.fault = Fault::kNone;
    clean.schedule = Schedule::synchronous();
    lanes.insert(lanes.begin(), clean);
  }
  return lanes;
}

std::vector<StoredRows> check_replay_lanes(const trace::Trace& trace,
                                           const std::vector<sim::LaneSpec>& lanes,
                                           const PoolConfig& config) {
  for (const sim::LaneSpec& lane : lanes) {
    try {  // the ring's parameters against the trace's T, trees, schedules: at the header
      HostScheduler(lane.strategy, config, lane.schedule, lane.fault);
    } catch (const InputError& e) {
      throw InputError(trace.file, trace.header_line, e.message());
    }
  }
  std::vector<StoredRows> storage;
  std::vector<PoolShape> shapes;
  for (const sim::LaneSpec& lane : lanes) {
    storage.push_back(sim::lane_storage(trace, lane, config));
    shapes.push_back(stored_shape(make_layout(lane.strategy, config).shape, storage.back()));
  }
  check_lanes_can_run(trace, lanes, shapes);
  return storage;
}

}  // namespace specstate::cli
