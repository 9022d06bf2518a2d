#include "core/strategy/strategy.h"

#include <limits>

#include "core/errors.h"
#include "core/primitives.h"

namespace specstate {
namespace {

// x * y + z in T, or an InputError naming `what`: pool sizes come from the user (footprint
// flags, trace headers), so an overflow is bad input, not a broken invariant.
template <typename T>
T checked(T x, T y, T z, const StrategyLayout& l, const char* what) {
  T product, sum;
  if (__builtin_mul_overflow(x, y, &product) || __builtin_add_overflow(product, z, &sum)) {
    throw InputError(std::string(to_string(l.kind)) + ": " + what + " exceed " +
                     std::to_string(std::numeric_limits<T>::max()) + " for pool_rows " +
                     std::to_string(l.config.pool_rows) + ", max_requests " +
                     std::to_string(l.config.max_requests) +
                     " and T = " + std::to_string(l.config.tokens_per_verify));
  }
  return sum;
}

}  // namespace

const std::vector<StrategyKind>& all_strategies() {
  static const std::vector<StrategyKind> kinds = {StrategyKind::kScatter, StrategyKind::kInline,
                                                  StrategyKind::kWindow, StrategyKind::kReplay,
                                                  StrategyKind::kDeferred};
  return kinds;
}

std::string_view to_string(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::kScatter:
      return "scatter";
    case StrategyKind::kInline:
      return "inline";
    case StrategyKind::kWindow:
      return "window";
    case StrategyKind::kReplay:
      return "replay";
    case StrategyKind::kDeferred:
      return "deferred";
  }
  SPECSTATE_ASSERT(false, "unknown StrategyKind");
}

std::vector<StrategyKind> parse_strategies(std::string_view text) {
  if (text == "all") return all_strategies();
  std::vector<StrategyKind> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view name = text.substr(start, comma - start);
    bool found = false;
    for (StrategyKind k : all_strategies()) {
      if (to_string(k) == name) {
        out.push_back(k);
        found = true;
      }
    }
    if (!found) {
      throw InputError("unknown strategy '" + std::string(name) +
                       "' (known: scatter, inline, window, replay, deferred, all)");
    }
    start = comma + 1;
  }
  return out;
}

StrategyLayout make_layout(StrategyKind kind, const PoolConfig& config) {
  const int32_t T = config.tokens_per_verify;
  if (T < 1 || T > kMaxVerifyTokens) {
    throw InputError("tokens per verify T = " + std::to_string(T) + " outside 1.." +
                     std::to_string(kMaxVerifyTokens));
  }
  if (config.pool_rows < 1) throw InputError("pool_rows must be >= 1");
  if (config.max_requests < 1) throw InputError("max_requests must be >= 1");

  StrategyLayout l;
  l.kind = kind;
  l.config = config;
  PoolShape& s = l.shape;
  s.geometry = config.geometry;
  s.ssm_dtype = config.ssm_dtype;
  s.conv_cols = config.geometry.conv_state_cols();
  const char* rows = "state rows";
  switch (kind) {
    case StrategyKind::kScatter:
      l.scratch_rows = checked(config.pool_rows, T, 0, l, rows);
      break;
    case StrategyKind::kInline:
      l.draft_rows = checked(config.max_requests, T - 1, T - 1, l, rows);
      break;
    case StrategyKind::kWindow:
      l.draft_rows = checked(config.max_requests, T - 1, 0, l, rows);
      s.conv_cols += T - 1;
      break;
    case StrategyKind::kReplay:
      s.payload_slots = config.max_requests;
      s.payload_tokens = T;
      break;
    case StrategyKind::kDeferred:
      s.payload_slots = checked(config.max_requests, 2, 0, l, "payload slots");
      s.payload_tokens = T;
      l.inspect_rows = 1;
      break;
  }
  // pool + draft + scratch + inspect, as 1 * x + sum.
  int32_t state_rows = checked(1, l.draft_rows, config.pool_rows, l, rows);
  state_rows = checked(1, l.scratch_rows, state_rows, l, rows);
  s.state_rows = checked(1, l.inspect_rows, state_rows, l, rows);
  // Bytes cannot overflow int64 once rows fit int32: a row of the largest preset is < 2^32 bytes.
  const int64_t row_bytes = s.state_row_bytes();
  l.pool_bytes = row_bytes * config.pool_rows;
  l.draft_bytes = row_bytes * l.draft_rows;
  l.scratch_bytes = row_bytes * l.scratch_rows;
  l.inspect_bytes = row_bytes * l.inspect_rows;
  l.payload_bytes = s.payload_bytes();
  SPECSTATE_ASSERT(l.total_bytes() == s.total_bytes(), "layout categories add up to the shape");
  return l;
}

int32_t StrategyLayout::scratch_row(int32_t working_row, int32_t token) const {
  SPECSTATE_ASSERT(kind == StrategyKind::kScatter, "scratch rows belong to scatter");
  return config.pool_rows + working_row * config.tokens_per_verify + token;
}

int32_t StrategyLayout::draft_row(int32_t req_row, int32_t token) const {
  SPECSTATE_ASSERT(kind == StrategyKind::kInline || kind == StrategyKind::kWindow,
                   "draft rows belong to inline and window");
  SPECSTATE_ASSERT(token >= 0 && token < config.tokens_per_verify - 1, "draft token index");
  return config.pool_rows + req_row * (config.tokens_per_verify - 1) + token;
}

int32_t StrategyLayout::payload_slot(int32_t req_row, int32_t buffer) const {
  if (kind == StrategyKind::kReplay) return req_row;
  SPECSTATE_ASSERT(kind == StrategyKind::kDeferred, "payload slots belong to replay and deferred");
  return 2 * req_row + buffer;
}

int32_t StrategyLayout::inspect_row() const {
  SPECSTATE_ASSERT(inspect_rows == 1, "only deferred has an inspection row");
  return config.pool_rows + draft_rows + scratch_rows;
}

StepBytes verify_step_bytes(const StrategyLayout& l, int32_t accepted) {
  const PoolShape& s = l.shape;
  const int64_t layers = s.geometry.layers;
  const int64_t T = l.config.tokens_per_verify;
  const int64_t ssm = s.ssm_row_bytes() * layers;
  const int64_t col = int64_t{s.geometry.conv_dim()} * 2 * layers;  // one conv column
  const int64_t window = col * s.geometry.conv_state_cols();
  const int64_t state = ssm + window;
  const int64_t token_payload = int64_t{s.payload_token_elements()} * 2 * layers;
  StepBytes b;
  switch (l.kind) {
    case StrategyKind::kScatter:  // read 1, write T, commit copy: read 1 + write 1
      b.state_read = 2 * state;
      b.state_write = (T + 1) * state;
      break;
    case StrategyKind::kInline:  // read 1, write T
      b.state_read = state;
      b.state_write = T * state;
      break;
    case StrategyKind::kWindow:  // SSM: read 1, write T; conv: read W-1, rewrite W-2+T columns
      b.state_read = ssm + window;
      b.state_write = T * ssm + col * (s.geometry.conv_state_cols() - 1 + T);
      break;
    case StrategyKind::kReplay:  // read 1 (verify), commit: read 1 + write 1
      b.state_read = 2 * state;
      b.state_write = state;
      b.payload_write = T * token_payload;
      b.payload_read = accepted * token_payload;
      break;
    case StrategyKind::kDeferred:  // read 1, write 1 (the commit of the previous step)
      b.state_read = state;
      b.state_write = state;
      b.payload_write = T * token_payload;
      b.payload_read = accepted * token_payload;
      break;
  }
  return b;
}

}  // namespace specstate
