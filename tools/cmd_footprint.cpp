// specstate footprint: memory per strategy and state bytes moved per verify step, as a table,
// CSV, JSON, a before/after comparison, or an SVG chart against batch size.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/draft_tree.h"
#include "core/errors.h"
#include "core/geometry.h"
#include "core/io/output_file.h"
#include "core/primitives.h"
#include "core/strategy/strategy.h"
#include "tools/byte_text.h"
#include "tools/commands.h"
#include "tools/footprint_table.h"
#include "tools/integer_option.h"
#include "tools/preset_option.h"
#include "tools/run_options.h"

namespace specstate::cli {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct FootprintArgs {
  std::string preset;
  int32_t tp = 1;
  std::vector<int32_t> batches = {64};
  int32_t draft_tokens = 3;
  std::string ssm_dtype = "f32";
  int32_t pool_rows = 0;  // 0: 2 x batch
  int32_t page_size = 0;  // paged: tokens per page; 0: one page
  bool json = false;
  bool csv = false;
  std::string compare;  // "before,after"
  std::string svg;      // output file
  int32_t max_batch = 256;
  RingParams ring;
  std::optional<double> accept_prob;   // the generator's acceptance model, or
  std::vector<double> accept_weights;  // T weights; neither: every token accepted
  std::string tree;                    // draft tree shape (top-k per level), or
  int32_t tree_nodes = 0;              // a node budget (cuts --tree); 0 and "": chains
  int32_t host_slots = 0;              // host-tier slots (offload, restore): host memory
};

// ", draft trees of 15 nodes (the window strategy does not run trees)" for a tree pool, else "".
std::string tree_text(const PoolConfig& config) {
  if (config.tree_nodes == 0) return "";
  return ", draft trees of " + std::to_string(config.tree_nodes) + " nodes (" + no_trees_text() +
         ")";
}

std::string format(const char* fmt, auto... values) {
  std::string out(size_t(std::snprintf(nullptr, 0, fmt, values...)), '\0');
  std::snprintf(out.data(), out.size() + 1, fmt, values...);
  return out;
}

// The largest --max-batch: the chart has one point per batch size.
constexpr int32_t kMaxChartBatch = 65536;

// x * y, or an InputError: every size here comes from flags.
int64_t checked_mul(int64_t x, int64_t y, const std::string& what) {
  int64_t product;
  if (__builtin_mul_overflow(x, y, &product)) throw InputError(what + " overflows 64-bit bytes");
  return product;
}

// The layout of every strategy for `batch`, checked before anything is printed, so that a size
// whose rows or bytes do not fit is a flag error and never a negative figure or an abort.
PoolConfig footprint_config(const FootprintArgs& a, int32_t batch) {
  const std::string flag = "--batch " + std::to_string(batch);
  if (batch < 1) throw InputError(flag + ": must be >= 1");
  if (a.draft_tokens < 0 || a.draft_tokens > 15)
    throw InputError("--draft-tokens " + std::to_string(a.draft_tokens) +
                     ": must be in 0..15 (T = draft tokens + 1 <= 16)");
  if (a.pool_rows < 0) throw InputError("--pool-rows must be >= 1 (absent: 2 x batch)");
  if (a.pool_rows > 0 && a.pool_rows < batch) {
    throw InputError("--pool-rows " + std::to_string(a.pool_rows) + ": fewer than the " + flag +
                     " running requests, each of which holds a working row");
  }
  if (a.page_size < 0) throw InputError("--page-size must be >= 0 (0: no pages)");
  PoolConfig config;
  config.page_size = a.page_size;
  config.geometry = make_geometry(a.preset, a.tp);
  config.ssm_dtype = parse_ssm_dtype(a.ssm_dtype);
  config.tokens_per_verify = a.draft_tokens + 1;
  config.ring = a.ring;
  if (a.tree_nodes < 0 || a.tree_nodes > kMaxTreeNodes)
    throw InputError("--tree-nodes " + std::to_string(a.tree_nodes) + ": must be in 0..64");
  config.tree_nodes =
      a.tree.empty()
          ? a.tree_nodes
          : tree_of_shape(parse_tree_shape(a.tree, "--tree", a.tree_nodes), a.tree_nodes).nodes();
  if (!a.tree.empty() && int32_t(parse_tree_shape(a.tree, "--tree").size()) > a.draft_tokens) {
    throw InputError("--tree " + a.tree + ": deeper than the " + std::to_string(a.draft_tokens) +
                     " draft tokens (--draft-tokens)");
  }
  config.max_requests = batch;
  config.pool_rows = a.pool_rows;
  if (a.pool_rows == 0 && __builtin_mul_overflow(batch, 2, &config.pool_rows)) {
    throw InputError(flag + ": the default pool of 2 x batch rows exceeds " +
                     std::to_string(std::numeric_limits<int32_t>::max()) +
                     " rows (give --pool-rows)");
  }
  try {
    for (StrategyKind kind : strategies_running(config.tree_nodes)) {
      const StrategyLayout l = make_layout(kind, config);
      checked_mul(verify_step_bytes(l, config.tokens_per_verify).total(), batch,
                  std::string(to_string(kind)) + ": bytes per verify step");
    }
  } catch (const InputError& e) {
    throw InputError(flag + ": " + e.what());
  }
  return config;
}

// The accepted lengths' weights the step figures use: the given ones, or all accepted.
std::vector<double> weights_or_all(const std::vector<double>& w, int32_t T) {
  return w.empty() ? all_accepted_weights(T) : w;
}

// Mean bytes of one verify step of the whole batch (fold_rate and history_tokens stay per
// request and verify).
MeanStepBytes batch_step(const StrategyLayout& l, const std::vector<double>& w) {
  MeanStepBytes m = mean_verify_step_bytes(l, weights_or_all(w, l.config.tokens_per_verify));
  const double batch = l.config.max_requests;
  m.state_read *= batch;
  m.state_write *= batch;
  m.payload_read *= batch;
  m.payload_write *= batch;
  return m;
}

double step_state_bytes(const StrategyLayout& l, const std::vector<double>& w) {
  return batch_step(l, w).state_total();
}

double step_payload_bytes(const StrategyLayout& l, const std::vector<double>& w) {
  return batch_step(l, w).payload_total();
}

// What the step figures assume, in words.
std::string acceptance_text(const std::vector<double>& w, int32_t T) {
  if (w.empty()) return "all " + std::to_string(T) + " tokens accepted";
  double total = 0, mean = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    total += w[i];
    mean += w[i] * double(i + 1);
  }
  return format("mean accepted length %.2f of %d", mean / total, T);
}

// The ring's line under a table: its history and folds at these acceptance statistics.
std::string ring_note(const PoolConfig& config, const std::vector<double>& w) {
  const StrategyLayout l = make_layout(StrategyKind::kRing, config);
  const MeanStepBytes m = mean_verify_step_bytes(l, weights_or_all(w, config.tokens_per_verify));
  return format(
      "ring (%d slots, history <= %d, fold at >= %d): per verify it replays %.2f history tokens\n"
      "  and folds %.3f times (one fold every %.2f verifies) in the long run, at %s.\n",
      config.ring.slots, config.ring.max_history,
      config.ring.fold_threshold(config.tokens_per_verify), m.history_tokens, m.fold_rate,
      1.0 / m.fold_rate, acceptance_text(w, config.tokens_per_verify).c_str());
}

// The paged strategy's line under a table: how often its running page moves (one state copy).
std::string paged_note(const PoolConfig& config, const std::vector<double>& w) {
  if (config.page_size == 0) {
    return "paged: no --page-size, so one page: its running block never moves (window's bytes).\n";
  }
  const StrategyLayout l = make_layout(StrategyKind::kPaged, config);
  const MeanStepBytes m = mean_verify_step_bytes(l, weights_or_all(w, config.tokens_per_verify));
  return format(
      "paged (pages of %d tokens): its running page moves %.3f times per verify (one\n"
      "  state copy each) in the long run.\n",
      config.page_size, m.page_moves);
}

// The display name of a preset ("Qwen3-Next-80B-A3B").
std::string preset_title(const std::string& preset) {
  for (const PresetInfo& p : presets()) {
    if (p.name == preset) return std::string(p.name == "tiny" ? p.name : p.description);
  }
  return preset;
}

// ---- SVG chart.

// A round tick step giving about `target` intervals over [0, max].
double tick_step(double max, int target) {
  const double raw = max / target;
  const double base = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * base >= raw) return m * base;
  }
  return 10 * base;
}

std::string tick_label(double v) {
  return std::fabs(v - std::round(v)) < 1e-9 ? format("%.0f", v) : format("%g", v);
}

struct Series {
  StrategyKind kind;
  std::vector<double> memory;  // per batch 1..max_batch, in the chart's unit
};

// The unit of a chart whose largest value is `max_bytes`: GiB, MiB or KiB, so that the tiny
// preset's chart does not read 0.0 everywhere.
std::pair<double, const char*> chart_unit(double max_bytes) {
  if (max_bytes >= kGiB) return {kGiB, "GiB"};
  if (max_bytes >= 1024.0 * 1024.0) return {1024.0 * 1024.0, "MiB"};
  return {1024.0, "KiB"};
}

const ChartStyle& chart_style(StrategyKind k) {
  return strategy_info(k).chart;
}

std::string svg_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else
      out += c;
  }
  return out;
}

}  // namespace

// The host tier's memory: `slots` saved states, the same in every strategy (a cache row holds a
// whole state at offset 0 in each), on the host, not the device.
int64_t host_tier_bytes(const PoolConfig& config, int32_t slots) {
  PoolShape shape;
  shape.geometry = config.geometry;
  shape.ssm_dtype = config.ssm_dtype;
  return int64_t{slots} * shape.saved_state_bytes();
}

nlohmann::json footprint_json(const PoolConfig& config, const std::vector<double>& w,
                              int32_t host_slots) {
  nlohmann::json j = {
      {"preset", config.geometry.preset},
      {"tp", config.geometry.tp},
      {"recurrence", to_string(config.geometry.recurrence)},
      {"ssm_dtype", to_string(config.ssm_dtype)},
      {"tokens_per_verify", config.tokens_per_verify},
      {"tree_nodes", config.tree_nodes},
      {"batch", config.max_requests},
      {"pool_rows", config.pool_rows},
      {"gdn_layers", config.geometry.layers},
      {"page_size", config.page_size},
      {"accept_weights", weights_or_all(w, config.tokens_per_verify)},
      {"host_tier", {{"slots", host_slots}, {"bytes", host_tier_bytes(config, host_slots)}}},
      {"ring",
       {{"slots", config.ring.slots},
        {"max_history", config.ring.max_history},
        {"fold_at", config.ring.fold_threshold(config.tokens_per_verify)}}}};
  for (StrategyKind kind : strategies_running(config.tree_nodes)) {
    const StrategyLayout l = make_layout(kind, config);
    const MeanStepBytes m = batch_step(l, w);
    const bool ring = kind == StrategyKind::kRing;
    const bool paged = kind == StrategyKind::kPaged;
    j["strategies"].push_back(
        {{"strategy", to_string(kind)},
         {"pool_bytes", l.pool_bytes},
         {"draft_bytes", l.draft_bytes},
         {"scratch_bytes", l.scratch_bytes},
         {"inspect_bytes", l.inspect_bytes},
         {"payload_bytes", l.payload_bytes},
         {"total_bytes", l.total_bytes()},
         {"state_bytes_per_step", m.state_total()},
         {"payload_bytes_per_step", m.payload_total()},
         {"folds_per_step", ring ? nlohmann::json(m.fold_rate) : nullptr},
         {"history_tokens_per_step", ring ? nlohmann::json(m.history_tokens) : nullptr},
         {"page_moves_per_step", paged ? nlohmann::json(m.page_moves) : nullptr}});
  }
  return j;
}

// "GDN", "KDA": what the layers run, in prose.
std::string layer_kind(const PoolConfig& config) {
  return std::string(recurrence_info(config.geometry.recurrence).abbreviation);
}

void print_footprint_table(const PoolConfig& config, const std::vector<double>& w,
                           int32_t host_slots) {
  const int32_t batch = config.max_requests;
  std::printf("%s TP%d, SSM %s, T=%d, batch %d, pool %d rows, %d %s layers%s\n",
              config.geometry.preset.c_str(), config.geometry.tp,
              std::string(to_string(config.ssm_dtype)).c_str(), config.tokens_per_verify, batch,
              config.pool_rows, config.geometry.layers, layer_kind(config).c_str(),
              tree_text(config).c_str());
  std::printf("%-9s %10s %14s %10s %10s   %12s %11s\n", "strategy", "pool", "draft/scratch",
              "payload", "total", "state/step", "states/req");
  for (StrategyKind kind : strategies_running(config.tree_nodes)) {
    const StrategyLayout l = make_layout(kind, config);
    const double state = step_state_bytes(l, w);
    const double states = state / config.max_requests / double(l.shape.state_row_bytes());
    const int64_t extra = l.draft_bytes + l.scratch_bytes + l.inspect_bytes;
    std::printf("%-9s %10s %14s %10s %10s   %12s %11.2f\n", std::string(to_string(kind)).c_str(),
                byte_text(double(l.pool_bytes)).c_str(), byte_text(double(extra)).c_str(),
                byte_text(double(l.payload_bytes)).c_str(),
                byte_text(double(l.total_bytes())).c_str(), byte_text(state).c_str(), states);
  }
  std::printf(
      "state/step: SSM + conv bytes one verify step of the whole batch reads and writes\n"
      "(%s); states/req: the same per request, in units of one full state.\n%s%s",
      acceptance_text(w, config.tokens_per_verify).c_str(), ring_note(config, w).c_str(),
      paged_note(config, w).c_str());
  if (host_slots > 0) {
    std::printf(
        "host tier: %d slots of one saved state, %s of host memory (every strategy alike)\n",
        host_slots, byte_text(double(host_tier_bytes(config, host_slots))).c_str());
  }
}

std::string footprint_csv_header() {
  return "preset,tp,ssm_dtype,tokens_per_verify,batch,pool_rows,gdn_layers,strategy,pool_bytes,"
         "draft_bytes,scratch_bytes,inspect_bytes,payload_bytes,total_bytes,"
         "state_bytes_per_step,payload_bytes_per_step\n";
}

std::string footprint_csv_rows(const PoolConfig& config, const std::vector<double>& w) {
  std::string out;
  for (StrategyKind kind : strategies_running(config.tree_nodes)) {
    const StrategyLayout l = make_layout(kind, config);
    out += format("%s,%d,%s,%d,%d,%d,%d,%s,%lld,%lld,%lld,%lld,%lld,%lld,%.0f,%.0f\n",
                  config.geometry.preset.c_str(), config.geometry.tp,
                  std::string(to_string(config.ssm_dtype)).c_str(), config.tokens_per_verify,
                  config.max_requests, config.pool_rows, config.geometry.layers,
                  std::string(to_string(kind)).c_str(), (long long)l.pool_bytes,
                  (long long)l.draft_bytes, (long long)l.scratch_bytes, (long long)l.inspect_bytes,
                  (long long)l.payload_bytes, (long long)l.total_bytes(), step_state_bytes(l, w),
                  step_payload_bytes(l, w));
  }
  return out;
}

std::string footprint_compare(const PoolConfig& config, StrategyKind before, StrategyKind after,
                              const std::vector<double>& w) {
  const StrategyLayout b = make_layout(before, config), a = make_layout(after, config);
  const std::string bn(to_string(before)), an(to_string(after));
  std::string out =
      format("%s TP%d, SSM %s, T=%d, batch %d, pool %d rows, %d %s layers%s\n",
             config.geometry.preset.c_str(), config.geometry.tp,
             std::string(to_string(config.ssm_dtype)).c_str(), config.tokens_per_verify,
             config.max_requests, config.pool_rows, config.geometry.layers,
             layer_kind(config).c_str(), tree_text(config).c_str());
  out += format("%-28s %16s %16s %16s %9s\n", "", ("before: " + bn).c_str(),
                ("after: " + an).c_str(), "saved", "saved");
  // Relative to nothing is meaningless: "n/a" when `before` has none of it.
  auto line = [&](const char* what, double vb, double va, auto text) {
    const std::string pct = vb != 0 ? format("%.1f%%", 100.0 * (vb - va) / vb) : "n/a";
    out += format("%-28s %16s %16s %16s %9s\n", what, text(vb).c_str(), text(va).c_str(),
                  text(vb - va).c_str(), pct.c_str());
  };
  auto bytes = [&](const char* what, double vb, double va) { line(what, vb, va, byte_text); };
  bytes("memory, total", double(b.total_bytes()), double(a.total_bytes()));
  bytes("  scheduler pool", double(b.pool_bytes), double(a.pool_bytes));
  bytes("  draft / scratch / inspect", double(b.draft_bytes + b.scratch_bytes + b.inspect_bytes),
        double(a.draft_bytes + a.scratch_bytes + a.inspect_bytes));
  bytes("  payload", double(b.payload_bytes), double(a.payload_bytes));
  bytes("state bytes / verify step", step_state_bytes(b, w), step_state_bytes(a, w));
  bytes("payload bytes / verify step", step_payload_bytes(b, w), step_payload_bytes(a, w));
  const double row = double(b.shape.state_row_bytes());
  line("states moved / request", step_state_bytes(b, w) / config.max_requests / row,
       step_state_bytes(a, w) / config.max_requests / row,
       [](double states) { return format("%.3f", states); });
  out += format(
      "Memory: everything the strategy allocates (all GDN layers, one rank). Step bytes: SSM +\n"
      "conv state read and written by one verify step of the whole batch, %s.\nA negative "
      "saving means '%s' costs more than '%s'.\n",
      acceptance_text(w, config.tokens_per_verify).c_str(), an.c_str(), bn.c_str());
  if (before == StrategyKind::kRing || after == StrategyKind::kRing) out += ring_note(config, w);
  return out;
}

std::string footprint_svg(const PoolConfig& config, int32_t max_batch,
                          int32_t pool_rows_per_request) {
  if (max_batch < 2 || max_batch > kMaxChartBatch)
    throw InputError("--max-batch " + std::to_string(max_batch) + ": must be in 2.." +
                     std::to_string(kMaxChartBatch) + " (one point per batch size)");
  std::vector<Series> series;
  double max_bytes = 0;
  for (StrategyKind kind : strategies_running(config.tree_nodes)) {
    Series s{kind, {}};
    for (int32_t batch = 1; batch <= max_batch; ++batch) {
      PoolConfig c = config;
      c.max_requests = batch;
      c.pool_rows = pool_rows_per_request * batch;
      s.memory.push_back(double(make_layout(kind, c).total_bytes()));
    }
    max_bytes = std::max(max_bytes, s.memory.back());
    series.push_back(std::move(s));
  }
  const auto [unit_bytes, unit] = chart_unit(max_bytes);
  for (Series& s : series) {
    for (double& v : s.memory)
      v /= unit_bytes;
  }
  const double ymax_data = max_bytes / unit_bytes;
  // Legend top to bottom in the order the lines end, highest first.
  std::sort(series.begin(), series.end(),
            [](const Series& x, const Series& y) { return x.memory.back() > y.memory.back(); });

  const double W = 900, H = 520, left = 80, right = 300, top = 70, bottom = 70;
  const double pw = W - left - right, ph = H - top - bottom;
  const double ystep = tick_step(ymax_data, 6);
  const double ymax = std::ceil(ymax_data / ystep) * ystep;
  // Batch ticks at powers of two apart (32, 64, ...) when the range allows.
  const bool pow2 = max_batch >= 8 && (max_batch & (max_batch - 1)) == 0;
  const double xstep = pow2 ? max_batch / 8.0 : tick_step(max_batch, 8);
  auto px = [&](double batch) { return left + pw * (batch - 0) / double(max_batch); };
  auto py = [&](double v) { return top + ph * (1.0 - v / ymax); };

  std::string o = format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
      W, H, W, H);
  o += format("<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
  const std::string title =
      preset_title(config.geometry.preset) +
      format(", TP%d, T=%d (%d draft tokens), SSM %s", config.geometry.tp, config.tokens_per_verify,
             config.tokens_per_verify - 1, config.ssm_dtype == SsmDtype::kF32 ? "fp32" : "bf16");
  o += format("<text x=\"%.0f\" y=\"28\" font-size=\"18\" font-weight=\"bold\">%s</text>\n", left,
              svg_escape(title).c_str());
  o += format(
      "<text x=\"%.0f\" y=\"50\" font-size=\"13\" fill=\"#444444\">%s recurrent-state memory "
      "per GPU by strategy: %d %s layers, scheduler pool = %d x batch rows</text>\n",
      left, layer_kind(config).c_str(), config.geometry.layers, layer_kind(config).c_str(),
      pool_rows_per_request);
  // Grid and y ticks.
  for (double v = 0; v <= ymax + 1e-9; v += ystep) {
    o += format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n",
                left, py(v), left + pw, py(v));
    o += format("<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">%s</text>\n",
                left - 8, py(v) + 4, tick_label(v).c_str());
  }
  for (double b = 0; b <= max_batch + 1e-9; b += xstep) {
    o += format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eeeeee\"/>\n",
                px(b), top, px(b), top + ph);
    o += format("<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
                px(b), top + ph + 18, tick_label(b).c_str());
  }
  // Axes and their labels.
  o += format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000000\"/>\n", left,
              top + ph, left + pw, top + ph);
  o += format("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000000\"/>\n", left,
              top, left, top + ph);
  o += format(
      "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\">batch size (running "
      "requests)</text>\n",
      left + pw / 2, H - 22);
  o += format(
      "<text x=\"20\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" "
      "transform=\"rotate(-90 20 %.1f)\">total state memory (%s)</text>\n",
      top + ph / 2, top + ph / 2, unit);
  // Lines, dashed ones last so that they stay visible over the solid line they run along.
  std::vector<const Series*> drawing;
  for (const Series& s : series)
    if (std::string_view(chart_style(s.kind).dash) == "none") drawing.push_back(&s);
  for (const Series& s : series)
    if (std::string_view(chart_style(s.kind).dash) != "none") drawing.push_back(&s);
  for (const Series* sp : drawing) {
    const Series& s = *sp;
    std::string points;
    for (size_t i = 0; i < s.memory.size(); ++i)
      points += format("%.1f,%.1f ", px(double(i + 1)), py(s.memory[i]));
    o += format(
        "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" stroke-dasharray=\"%s\" "
        "points=\"%s\"/>\n",
        chart_style(s.kind).colour, chart_style(s.kind).dash, points.c_str());
  }
  // Legend: name, what it is, memory at the largest batch.
  const double lx = left + pw + 20;
  o += format("<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#444444\">at batch %d:</text>\n",
              lx, top + 4, max_batch);
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const double y = top + 28 + 42 * double(i);
    o += format(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\" "
        "stroke-dasharray=\"%s\"/>\n",
        lx, y, lx + 30, y, chart_style(s.kind).colour, chart_style(s.kind).dash);
    o += format(
        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\"><tspan font-weight=\"bold\">%s</tspan> "
        "%.1f %s</text>\n",
        lx + 38, y + 4, std::string(to_string(s.kind)).c_str(), s.memory.back(), unit);
    o += format("<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555555\">%s</text>\n",
                lx + 38, y + 19, chart_style(s.kind).note);
  }
  o += "</svg>\n";
  return o;
}

namespace {

std::vector<StrategyKind> compare_pair(const std::string& text) {
  const std::vector<StrategyKind> kinds = parse_strategies(text);
  if (kinds.size() != 2 || text == "all") {
    throw InputError("--compare takes two strategies, before and after (e.g. scatter,inline)");
  }
  return kinds;
}

int run_footprint(const FootprintArgs& a) {
  if (a.host_slots < 0) throw InputError("--host-slots must be >= 0 (0: no host tier)");
  if (a.host_slots > 0 && (a.csv || !a.compare.empty() || !a.svg.empty())) {
    throw InputError(
        "--host-slots: the host tier is reported in the table and in --json, not "
        "with --csv, --compare or --svg (its memory is the same for every strategy)");
  }
  if (!a.svg.empty()) {
    if (a.pool_rows > 0) throw InputError("--svg charts pool = 2 x batch rows; drop --pool-rows");
    io::write_file_atomically(a.svg, footprint_svg(footprint_config(a, 1), a.max_batch, 2),
                              "--svg " + a.svg);
    std::fprintf(stderr, "wrote %s\n", a.svg.c_str());
    return 0;
  }
  std::vector<PoolConfig> configs;  // all checked before the first line is printed
  for (int32_t batch : a.batches)
    configs.push_back(footprint_config(a, batch));
  const int32_t T = a.draft_tokens + 1;
  std::vector<double> w = a.accept_weights;
  if (a.accept_prob) {
    if (!(*a.accept_prob >= 0 && *a.accept_prob <= 1))
      throw InputError("--accept-prob: must be in 0..1");
    w = geometric_accept_weights(*a.accept_prob, T);
  } else if (!w.empty()) {
    check_accept_weights(w, T);
  }
  if (a.csv) std::printf("%s", footprint_csv_header().c_str());
  nlohmann::json all = nlohmann::json::array();
  for (size_t i = 0; i < configs.size(); ++i) {
    const PoolConfig& config = configs[i];
    if (a.csv) {
      std::printf("%s", footprint_csv_rows(config, w).c_str());
    } else if (a.json) {
      all.push_back(footprint_json(config, w, a.host_slots));
    } else if (!a.compare.empty()) {
      const std::vector<StrategyKind> pair = compare_pair(a.compare);
      std::printf("%s%s", i ? "\n" : "", footprint_compare(config, pair[0], pair[1], w).c_str());
    } else {
      if (i) std::printf("\n");
      print_footprint_table(config, w, a.host_slots);
    }
  }
  if (a.json) std::printf("%s\n", all.dump(2).c_str());  // one report per batch, always a list
  return 0;
}

}  // namespace

Command add_footprint(CLI::App& parent) {
  auto args = std::make_shared<FootprintArgs>();
  CLI::App* cmd = parent.add_subcommand(
      "footprint",
      "Memory each strategy allocates (scheduler pool, draft region or scratch, payload) and the\n"
      "state bytes one verify step moves, for a model preset and batch size. Computed from the\n"
      "same layout the backends allocate.");
  add_preset_option(cmd, args->preset, "Model preset (e.g. qwen3-next-80b-a3b, tiny)")->required();
  add_integer(cmd, "--tp", args->tp, "Tensor-parallel degree (heads divided by it)");
  auto* batch = add_integer(cmd, "--batch", args->batches,
                            "Running requests (request rows); a comma-separated list gives one "
                            "report each")
                    ->delimiter(',');
  add_integer(cmd, "--draft-tokens", args->draft_tokens,
              "Draft tokens per verify (T = draft tokens + 1, default 3)");
  cmd->add_option("--ssm-dtype", args->ssm_dtype, "SSM pool dtype: f32 (default) or bf16");
  add_integer(cmd, "--pool-rows", args->pool_rows, "Scheduler rows (default 2 x batch)");
  add_integer(cmd, "--host-slots", args->host_slots,
              "Slots of a host tier that snapshots are offloaded to (host memory, reported "
              "beside the device pools; default 0)");
  add_integer(cmd, "--page-size", args->page_size,
              "Tokens per page of the paged strategy's block table (default 0: one page, no "
              "moves)");
  auto* json = cmd->add_flag("--json", args->json,
                             "Write JSON instead of the table: a list, one report per batch");
  auto* csv = cmd->add_flag("--csv", args->csv, "Write CSV (bytes) instead of the table");
  auto* compare = cmd->add_option(
      "--compare", args->compare,
      "BEFORE,AFTER: memory and state bytes per verify step saved by AFTER (e.g. scatter,inline)");
  auto* svg = cmd->add_option("--svg", args->svg,
                              "Write an SVG chart of total memory against batch size 1..max-batch, "
                              "one line per strategy, to this file");
  auto* max_batch = add_integer(cmd, "--max-batch", args->max_batch,
                                "Largest batch of the --svg chart (default 256)");
  max_batch->needs(svg);
  auto* prob = cmd->add_option("--accept-prob", args->accept_prob,
                               "Step bytes at the generator's acceptance model: each draft token "
                               "accepted with this probability until the first rejection "
                               "(default: every token accepted)");
  auto* weights = cmd->add_option("--accept-weights", args->accept_weights,
                                  "Step bytes at these T weights of a = 1..T, comma-separated")
                      ->delimiter(',');
  prob->excludes(weights);
  cmd->add_option("--tree", args->tree,
                  "Pools for draft trees of this shape (top-k children per level, e.g. 2,2,2 = 15 "
                  "nodes): scatter N scratch rows, inline N-1 draft rows, N payload tokens; " +
                      no_trees_text());
  add_integer(cmd, "--tree-nodes", args->tree_nodes,
              "Draft trees of this many nodes (alone), or the --tree shape cut after them");
  add_ring_options(cmd, args->ring);
  svg->excludes(batch);  // the chart covers every batch 1..--max-batch
  json->excludes(csv)->excludes(compare)->excludes(svg);
  csv->excludes(compare)->excludes(svg);
  compare->excludes(svg);
  return {cmd, [args] { return run_footprint(*args); }};
}

}  // namespace specstate::cli
