#include "tools/lane_checks.h"

#include <cstdio>
#include <map>
#include <string>
#include <utility>

#include "backends/registry.h"
#include "core/errors.h"
#include "core/primitives.h"

namespace specstate::cli {
namespace {

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(int64_t{1} << 30));
  return buf;
}

// The most tokens one task of the lane runs in one step: a prefill chunk or a replay
// (kMaxReplayTokens), or a verify's T tokens or tree nodes after its longest pending replay
// (deferred: one step's T; ring: its history, which leaves room in the ring for the verify).
int32_t longest_step(const sim::LaneSpec& lane, const PoolShape& shape, const trace::Header& h) {
  const int32_t verify = std::max(h.tokens_per_verify(), h.tree_nodes);
  return std::max(kMaxReplayTokens,
                  max_pending_tokens(lane.strategy, shape, h.tokens_per_verify(), verify) + verify);
}

}  // namespace

void check_backend_flag(const std::vector<std::string>& backends) {
  for (const std::string& backend : backends) {
    try {
      backend_entry(backend).check_available();
    } catch (const InputError& e) {
      throw InputError("--backend: " + e.message());
    }
  }
}

void check_lanes_can_run(const trace::Trace& trace, const std::vector<sim::LaneSpec>& lanes,
                         const std::vector<PoolShape>& shapes, int64_t extra_bytes_per_backend,
                         const std::string& remedy) {
  SPECSTATE_ASSERT(shapes.size() == lanes.size(), "one shape per lane");
  for (size_t i = 0; i < lanes.size(); ++i) {
    try {
      const BackendEntry& backend = backend_entry(lanes[i].backend);
      backend.check_geometry(shapes[i].geometry);
      backend.check_step_tokens(shapes[i].geometry,
                                longest_step(lanes[i], shapes[i], trace.header));
    } catch (const InputError& e) {
      throw InputError(trace.file, trace.header_line, e.message());
    }
  }
  std::map<std::string, std::pair<int64_t, int>> need;  // backend -> (bytes, lanes)
  for (size_t i = 0; i < lanes.size(); ++i) {
    auto& [bytes, count] = need[lanes[i].backend];
    if (count == 0) bytes = extra_bytes_per_backend;
    bytes += shapes[i].total_bytes();
    ++count;
  }
  for (const auto& [backend, use] : need) {
    const MemoryLimit have = backend_entry(backend).memory_limit();
    if (have.bytes < 0 || use.first <= have.bytes) continue;
    throw InputError(trace.file, trace.header_line,
                     "the pools need " + gib(use.first) + " for " + std::to_string(use.second) +
                         " lane(s) on the " + backend + " backend, more than its " +
                         gib(have.bytes) + " of " + have.what +
                         " for the rows the trace touches (" + remedy + ")");
  }
}

}  // namespace specstate::cli
