#include "tools/memory_check.h"

#include <cstdio>
#include <map>
#include <string>
#include <utility>

#include "backends/registry.h"
#include "core/errors.h"

namespace specstate::cli {
namespace {

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(int64_t{1} << 30));
  return buf;
}

}  // namespace

void check_pool_memory(const trace::Trace& trace, const std::vector<sim::LaneSpec>& lanes,
                       int64_t extra_bytes_per_backend) {
  const PoolConfig config = sim::pool_config(trace.header);
  std::map<std::string, std::pair<int64_t, int>> need;  // backend -> (bytes, lanes)
  for (const sim::LaneSpec& lane : lanes) {
    auto& [bytes, count] = need[lane.backend];
    if (count == 0) bytes = extra_bytes_per_backend;
    bytes += make_layout(lane.strategy, config).total_bytes();
    ++count;
  }
  for (const auto& [backend, use] : need) {
    const MemoryLimit have = backend_memory_limit(backend);
    if (have.bytes < 0 || use.first <= have.bytes) continue;
    throw InputError(trace.file, trace.header_line,
                     "the pools need " + gib(use.first) + " for " + std::to_string(use.second) +
                         " lane(s) on the " + backend + " backend, more than its " +
                         gib(have.bytes) + " of " + have.what +
                         " (reduce pool_rows, max_requests or the lanes)");
  }
}

}  // namespace specstate::cli
