#include "core/strategy/strategy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "core/errors.h"
#include "core/primitives.h"
#include "core/suggest.h"

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

// The ring's parameters against T: the history and a verify's tokens fit one replay and the ring
// (FlashInfer: 16 + 16 <= 32), and a fold threshold that keeps the history within its bound.
void check_ring(const RingParams& r, int32_t T, int32_t N) {
  auto range = [](const char* name, int32_t v, int32_t lo, int32_t hi, const std::string& why) {
    if (v < lo || v > hi) {
      throw InputError("ring: " + std::string(name) + " " + std::to_string(v) + " outside " +
                       std::to_string(lo) + ".." + std::to_string(hi) + " (" + why + ")");
    }
  };
  const std::string t = "T = " + std::to_string(T);
  range("ring_history", r.max_history, T, kMaxReplayTokens - T,
        "at least " + t + ", and history + T at most " + std::to_string(kMaxReplayTokens));
  range("ring_slots", r.slots, r.max_history + N, kMaxPayloadTokens,
        "room for the history and " + std::to_string(N) + " new tokens");
  if (r.fold_at != 0) {
    range("ring_fold_at", r.fold_at, 1, r.max_history - T + 1,
          "a later fold would let the history pass ring_history");
  }
}

// Every strategy's entry; nullopt for a value that names none. The chart takes Okabe-Ito colours
// (colour-blind safe) and dash patterns, so that lines that nearly coincide (inline / window,
// replay / deferred) stay apart.
constexpr std::optional<StrategyInfo> strategy_entry(StrategyKind kind) {
  using enum VerifyMode;
  switch (kind) {
    case StrategyKind::kScatter:
      return StrategyInfo{
          .kind = kind,
          .name = "scatter",
          .verify_mode = kStateRows,
          .decode_mode = kStateRows,
          .chart = {"#D55E00", "none", "scratch + copy (before #159)"},
      };
    case StrategyKind::kInline:
      return StrategyInfo{
          .kind = kind,
          .name = "inline",
          .verify_mode = kStateRows,
          .decode_mode = kStateRows,
          .chart = {"#0072B2", "none", "output rows (tokenspeed #159)"},
      };
    case StrategyKind::kWindow:
      return StrategyInfo{
          .kind = kind,
          .name = "window",
          .verify_mode = kWindow,
          .decode_mode = kWindow,
          .no_trees =
              "its conv buffer holds one linear sequence per request row (the window "
              "after token j at offset j), which a tree's branches do not share",
          .chart = {"#56B4E9", "8 5", "block window (vLLM)"},
      };
    case StrategyKind::kReplay:
      return StrategyInfo{
          .kind = kind,
          .name = "replay",
          .verify_mode = kPayload,
          .decode_mode = kStateRows,
          .payload_buffers = 1,
          .chart = {"#009E73", "none", "payload + replay"},
      };
    case StrategyKind::kDeferred:
      return StrategyInfo{
          .kind = kind,
          .name = "deferred",
          .verify_mode = kPayload,
          .decode_mode = kStateRows,
          .payload_buffers = 2,
          .chart = {"#CC79A7", "8 5", "deferred replay"},
      };
    case StrategyKind::kRing:
      return StrategyInfo{
          .kind = kind,
          .name = "ring",
          .verify_mode = kPayload,
          .decode_mode = kStateRows,
          .payload_buffers = 1,
          .chart = {"#E69F00", "2 4", "history ring (FlashInfer #4081)"},
      };
    case StrategyKind::kPaged:
      return StrategyInfo{
          .kind = kind,
          .name = "paged",
          .verify_mode = kWindow,
          .decode_mode = kWindow,
          .no_trees =
              "its running block's conv buffer holds one linear sequence (the window after "
              "token j at offset j), which a tree's branches do not share",
          .chart = {"#000000", "1 3", "page blocks (vLLM align mode)"},
      };
  }
  return std::nullopt;
}

// The entries of every StrategyKind, in enumerator order: the switch above is the one list.
constexpr size_t kStrategyCount = [] {
  size_t n = 0;
  for (int v = 0; v <= std::numeric_limits<uint8_t>::max(); ++v)
    n += strategy_entry(StrategyKind(v)).has_value();
  return n;
}();
static_assert(
    [] {
      for (size_t i = 0; i < kStrategyCount; ++i) {
        const std::optional<StrategyInfo> e = strategy_entry(StrategyKind(i));
        if (!e || e->kind != StrategyKind(i)) return false;
      }
      return true;
    }(),
    "StrategyKind's values are 0, 1, ... and each entry names its own kind");
constexpr std::array<StrategyInfo, kStrategyCount> kStrategies = [] {
  std::array<StrategyInfo, kStrategyCount> table{};
  for (size_t i = 0; i < kStrategyCount; ++i)
    table[i] = strategy_entry(StrategyKind(i)).value();
  return table;
}();

// Bytes of one state as a copy reads or writes it, all layers: the SSM and the W-1 columns of
// the conv window (not a widened row's other columns).
int64_t copied_state_bytes(const PoolShape& s) {
  const int64_t window = int64_t{s.geometry.conv_dim()} * 2 * s.geometry.conv_state_cols();
  return s.geometry.layers * (s.ssm_row_bytes() + window);
}

std::string join(const std::vector<std::string_view>& names, std::string_view comma) {
  std::string out;
  for (std::string_view n : names)
    out += (out.empty() ? "" : std::string(comma)) + std::string(n);
  return out;
}

}  // namespace

const StrategyInfo& strategy_info(StrategyKind kind) {
  SPECSTATE_ASSERT(size_t(kind) < kStrategies.size(), "a StrategyKind names a strategy");
  return kStrategies[size_t(kind)];
}

std::string_view to_string(StrategyKind kind) {
  return strategy_info(kind).name;
}

const std::vector<StrategyKind>& all_strategies() {
  static const std::vector<StrategyKind> kinds = [] {
    std::vector<StrategyKind> all;
    for (const StrategyInfo& info : kStrategies)
      all.push_back(info.kind);
    return all;
  }();
  return kinds;
}

std::vector<StrategyKind> strategies_running(int32_t tree_nodes) {
  std::vector<StrategyKind> kinds = all_strategies();
  if (tree_nodes > 0)
    std::erase_if(kinds, [](StrategyKind k) { return !strategy_info(k).runs_trees(); });
  return kinds;
}

std::string no_trees_text() {
  std::vector<std::string_view> names;
  for (const StrategyInfo& info : kStrategies)
    if (!info.runs_trees()) names.push_back(info.name);
  if (names.empty()) return "";
  const std::string_view last = names.back();
  names.pop_back();
  return names.empty() ? "the " + std::string(last) + " strategy does not run trees"
                       : "the " + join(names, ", ") + " and " + std::string(last) +
                             " strategies do not run trees";
}

std::string strategy_names_text() {
  std::vector<std::string_view> names;
  for (const StrategyInfo& info : kStrategies)
    names.push_back(info.name);
  return join(names, ", ");
}

std::vector<StrategyKind> parse_strategies(std::string_view text) {
  if (text == "all") return all_strategies();
  std::vector<std::string_view> known;
  for (const StrategyInfo& info : kStrategies)
    known.push_back(info.name);
  known.push_back("all");
  std::vector<StrategyKind> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view name = text.substr(start, comma - start);
    const auto* found = std::find_if(kStrategies.begin(), kStrategies.end(),
                                     [&](const StrategyInfo& info) { return info.name == name; });
    if (found == kStrategies.end()) {
      throw InputError("unknown strategy '" + std::string(name) + "'" + did_you_mean(name, known) +
                       " (known: " + join(known, ", ") + ")");
    }
    out.push_back(found->kind);
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
  if (config.tree_nodes < 0 || config.tree_nodes > kMaxTreeNodes) {
    throw InputError("tree_nodes " + std::to_string(config.tree_nodes) + " outside 0.." +
                     std::to_string(kMaxTreeNodes));
  }
  const StrategyInfo& info = strategy_info(kind);
  if (config.tree_nodes > 0 && !info.runs_trees()) {
    std::vector<std::string_view> others;
    for (StrategyKind k : strategies_running(config.tree_nodes))
      others.push_back(to_string(k));
    throw InputError("the " + std::string(info.name) +
                     " strategy does not run draft trees: " + std::string(info.no_trees) +
                     "; replay this trace with the other strategies (--strategy " +
                     join(others, ",") + ")");
  }
  const int32_t N = config.verify_tokens();

  StrategyLayout l;
  l.kind = kind;
  l.config = config;
  PoolShape& s = l.shape;
  s.geometry = config.geometry;
  s.ssm_dtype = config.ssm_dtype;
  s.conv_cols = config.geometry.conv_state_cols();
  s.request_rows = config.max_requests;
  const char* rows = "state rows";
  switch (kind) {
    case StrategyKind::kScatter:
      l.scratch_rows = checked(config.pool_rows, N, 0, l, rows);
      break;
    case StrategyKind::kInline:
      l.draft_rows = checked(config.max_requests, N - 1, N - 1, l, rows);
      break;
    case StrategyKind::kWindow:
      l.draft_rows = checked(config.max_requests, T - 1, 0, l, rows);
      s.conv_cols += T - 1;
      break;
    case StrategyKind::kPaged:
      l.draft_rows = checked(config.max_requests, T, 0, l, rows);
      s.conv_cols += T - 1;
      break;
    case StrategyKind::kReplay:
      s.payload_tokens = N;
      break;
    case StrategyKind::kDeferred:
      s.payload_tokens = N;
      l.inspect_rows = 1;
      break;
    case StrategyKind::kRing:
      check_ring(config.ring, T, N);
      s.payload_tokens = config.ring.slots;
      l.inspect_rows = 1;
      break;
  }
  s.payload_slots = checked(config.max_requests, info.payload_buffers, 0, l, "payload slots");
  // pool + draft + scratch + inspect, as 1 * x + sum.
  int32_t state_rows = checked(1, l.draft_rows, config.pool_rows, l, rows);
  state_rows = checked(1, l.scratch_rows, state_rows, l, rows);
  s.state_rows = checked(1, l.inspect_rows, state_rows, l, rows);
  // A row is < 2^45 bytes even for the largest custom geometry (1024 layers of 4096 x 1024 x 1024
  // fp32 states and 2^24 conv channels), but a row count up to 2^31 times that overflows int64:
  // the products below are formed only once the total fits.
  const long double total =
      (long double)(s.state_rows) * s.state_row_bytes() +
      (long double)(s.payload_slots) * s.geometry.layers * s.payload_slot_bytes();
  if (total >= 0x1p62L) {
    char size[32];
    std::snprintf(size, sizeof size, "%.3Lg", total);
    throw InputError("the " + std::string(to_string(kind)) + " pool would need " + size +
                     " bytes (" + std::to_string(s.state_rows) + " state rows of " +
                     std::to_string(s.state_row_bytes()) + " bytes), more than 2^62");
  }
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
  return config.pool_rows + working_row * config.verify_tokens() + token;
}

int32_t StrategyLayout::draft_row(int32_t req_row, int32_t token) const {
  SPECSTATE_ASSERT(kind == StrategyKind::kInline || kind == StrategyKind::kWindow,
                   "draft rows belong to inline and window");
  SPECSTATE_ASSERT(token >= 0 && token < config.verify_tokens() - 1, "draft token index");
  return config.pool_rows + req_row * (config.verify_tokens() - 1) + token;
}

int32_t StrategyLayout::paged_block(int32_t req_row, int32_t block) const {
  SPECSTATE_ASSERT(kind == StrategyKind::kPaged, "page blocks belong to paged");
  SPECSTATE_ASSERT(block >= 0 && block < config.tokens_per_verify, "a paged block index");
  return config.pool_rows + req_row * config.tokens_per_verify + block;
}

int32_t StrategyLayout::payload_slot(int32_t req_row, int32_t buffer) const {
  const int32_t buffers = strategy_info(kind).payload_buffers;
  SPECSTATE_ASSERT(buffer >= 0 && buffer < buffers, "a payload buffer of the strategy");
  return buffers * req_row + buffer;
}

int32_t StrategyLayout::inspect_row() const {
  SPECSTATE_ASSERT(inspect_rows == 1, "only deferred and ring have an inspection row");
  return config.pool_rows + draft_rows + scratch_rows;
}

int32_t max_pending_tokens(StrategyKind kind, const PoolShape& shape, int32_t T, int32_t N) {
  switch (kind) {
    case StrategyKind::kDeferred:
      return T;
    case StrategyKind::kRing:
      return shape.payload_tokens - N;
    case StrategyKind::kScatter:
    case StrategyKind::kInline:
    case StrategyKind::kWindow:
    case StrategyKind::kReplay:
    case StrategyKind::kPaged:
      return 0;
  }
  SPECSTATE_ASSERT(false, "unknown StrategyKind");
}

StepBytes verify_step_bytes(const StrategyLayout& l, int32_t accepted, int32_t history) {
  const PoolShape& s = l.shape;
  const int64_t layers = s.geometry.layers;
  const int64_t T = l.config.tokens_per_verify;
  const int64_t N = l.config.verify_tokens();  // tokens written: T, or a tree's nodes
  const int64_t ssm = s.ssm_row_bytes() * layers;
  const int64_t col = int64_t{s.geometry.conv_dim()} * 2 * layers;  // one conv column
  const int64_t window = col * s.geometry.conv_state_cols();
  const int64_t state = copied_state_bytes(s);
  const num::PayloadToken token = s.payload_token();
  const int64_t token_payload = token.bytes() * layers;
  const int wc = s.geometry.conv_state_cols();
  auto replay_read = [&](int64_t n) { return token.replay_read_bytes(n, wc) * layers; };
  StepBytes b;
  switch (l.kind) {
    case StrategyKind::kScatter:  // read 1, write N, commit copy: read 1 + write 1
      b.state_read = 2 * state;
      b.state_write = (N + 1) * state;
      break;
    case StrategyKind::kInline:  // read 1, write N
      b.state_read = state;
      b.state_write = N * state;
      break;
    case StrategyKind::kWindow:  // SSM: read 1, write T; conv: read W-1, rewrite W-2+T columns
    case StrategyKind::kPaged:   // the same inside a page (a move adds a copy: mean_verify_...)
      b.state_read = ssm + window;
      b.state_write = T * ssm + col * (s.geometry.conv_state_cols() - 1 + T);
      break;
    case StrategyKind::kReplay:  // read 1 (verify), commit: read 1 + write 1
      b.state_read = 2 * state;
      b.state_write = state;
      b.payload_write = N * token_payload;
      b.payload_read = replay_read(accepted);
      break;
    case StrategyKind::kDeferred:  // read 1, write 1 (the commit of the previous step)
      b.state_read = state;
      b.state_write = state;
      b.payload_write = N * token_payload;
      b.payload_read = replay_read(accepted);
      break;
    case StrategyKind::kRing:  // read 1 (the checkpoint); write 1 only on a fold
      b.state_read = state;
      b.state_write = history >= l.config.ring.fold_threshold(int32_t(T)) ? state : 0;
      b.payload_write = N * token_payload;
      b.payload_read = replay_read(history);
      break;
  }
  // A tree pool's payload strategies gather the accepted path to the front of the span: at most
  // a-1 entries read and written (the root stays).
  if (l.config.tree_nodes > 0 && s.payload_tokens > 0) {
    b.payload_read += (accepted - 1) * token_payload;
    b.payload_write += (accepted - 1) * token_payload;
  }
  return b;
}

std::vector<double> all_accepted_weights(int32_t T) {
  std::vector<double> w(size_t(T), 0.0);
  w.back() = 1.0;
  return w;
}

std::vector<double> geometric_accept_weights(double accept_prob, int32_t T) {
  std::vector<double> weights;
  double reach = 1.0;
  for (int32_t a = 1; a <= T; ++a) {
    const double stop = a < T ? 1.0 - accept_prob : 1.0;
    weights.push_back(reach * stop);
    reach *= accept_prob;
  }
  return weights;
}

void check_accept_weights(const std::vector<double>& weights, int32_t T) {
  if (int32_t(weights.size()) != T) {
    throw InputError("--accept-weights: " + std::to_string(weights.size()) +
                     " given, expected T = " + std::to_string(T) + " (one per a = 1..T)");
  }
  double total = 0;
  for (double w : weights) {
    if (!(w >= 0 && w <= 1e12)) {  // also refuses NaN
      char text[32];
      std::snprintf(text, sizeof text, "%g", w);
      throw InputError(std::string("--accept-weights: weight ") + text + " outside 0..1e12");
    }
    total += w;
  }
  if (!(total > 0)) throw InputError("--accept-weights: all zero");
}

MeanStepBytes mean_verify_step_bytes(const StrategyLayout& l,
                                     const std::vector<double>& accept_weights) {
  const int32_t T = l.config.tokens_per_verify;
  SPECSTATE_ASSERT(int32_t(accept_weights.size()) == T, "one accept weight per a = 1..T");
  double sum = 0;
  for (double w : accept_weights) {
    SPECSTATE_ASSERT(w >= 0, "accept weights are >= 0");
    sum += w;
  }
  SPECSTATE_ASSERT(sum > 0, "some accepted length has weight");
  MeanStepBytes m;
  auto add = [&m](const StepBytes& b, double p) {
    m.state_read += p * double(b.state_read);
    m.state_write += p * double(b.state_write);
    m.payload_read += p * double(b.payload_read);
    m.payload_write += p * double(b.payload_write);
  };
  if (l.kind != StrategyKind::kRing) {
    double mean_accepted = 0;
    for (int32_t a = 1; a <= T; ++a) {
      add(verify_step_bytes(l, a), accept_weights[size_t(a - 1)] / sum);
      mean_accepted += a * accept_weights[size_t(a - 1)] / sum;
    }
    // Paged: the running page moves once per page of accepted tokens in the long run, and each
    // move copies the live state into the new page's block (read one state, write one).
    if (l.kind == StrategyKind::kPaged && l.config.page_size > 0) {
      m.page_moves = mean_accepted / l.config.page_size;
      const double state = double(copied_state_bytes(l.shape));
      m.state_read += m.page_moves * state;
      m.state_write += m.page_moves * state;
    }
    return m;
  }
  // The ring's history length h before a verify is a Markov chain, h' = (h folds ? 0 : h) + a,
  // with one recurrent class (every path folds and restarts from 0). Its stationary
  // distribution pi = pi P, sum pi = 1, is the long-run share of steps at each h, periodic
  // chains included (a = T always cycles): solved exactly by Gaussian elimination.
  const int32_t H = l.config.ring.max_history, fold = l.config.ring.fold_threshold(T);
  const int32_t n = H + 1;
  // A x = e_last, with A = (P^T - I) whose last row is replaced by the normalisation.
  std::vector<std::vector<double>> A(size_t(n), std::vector<double>(size_t(n) + 1, 0.0));
  for (int32_t h = 0; h < n; ++h) {
    A[size_t(h)][size_t(h)] -= 1.0;
    const int32_t base = h >= fold ? 0 : h;
    for (int32_t a = 1; a <= T && base + a < n; ++a)
      A[size_t(base + a)][size_t(h)] += accept_weights[size_t(a - 1)] / sum;
  }
  for (int32_t h = 0; h <= n; ++h)
    A[size_t(n - 1)][size_t(h)] = 1.0;
  for (int32_t c = 0; c < n; ++c) {  // partial pivoting
    int32_t pivot = c;
    for (int32_t r = c + 1; r < n; ++r)
      if (std::fabs(A[size_t(r)][size_t(c)]) > std::fabs(A[size_t(pivot)][size_t(c)])) pivot = r;
    std::swap(A[size_t(c)], A[size_t(pivot)]);
    SPECSTATE_ASSERT(A[size_t(c)][size_t(c)] != 0,
                     "the ring's history chain has one recurrent class");
    for (int32_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = A[size_t(r)][size_t(c)] / A[size_t(c)][size_t(c)];
      for (int32_t k = c; k <= n; ++k)
        A[size_t(r)][size_t(k)] -= f * A[size_t(c)][size_t(k)];
    }
  }
  std::vector<double> mean(static_cast<size_t>(n));
  for (int32_t h = 0; h < n; ++h)
    mean[size_t(h)] = A[size_t(h)][size_t(n)] / A[size_t(h)][size_t(h)];
  for (int32_t h = 0; h <= H; ++h) {
    add(verify_step_bytes(l, T, h), mean[size_t(h)]);
    if (h >= fold) m.fold_rate += mean[size_t(h)];
    m.history_tokens += h * mean[size_t(h)];
  }
  return m;
}

}  // namespace specstate
