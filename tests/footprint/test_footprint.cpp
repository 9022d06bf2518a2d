// What a backend allocates equals make_layout's accounting for every preset, and the reports of
// `specstate footprint` say the same numbers (CSV, --compare) or draw them (a well-formed SVG).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "bench/mapped_bytes.h"
#include "core/errors.h"
#include "core/geometry.h"
#include "core/strategy/strategy.h"
#include "tests/temp_dir.h"
#include "tools/footprint_table.h"

namespace specstate {
namespace {

PoolConfig config_of(const std::string& preset, int32_t tp, int32_t T, int32_t batch) {
  PoolConfig c;
  c.geometry = make_geometry(preset, tp);
  c.tokens_per_verify = T;
  c.max_requests = batch;
  c.pool_rows = 2 * batch;
  return c;
}

// Every preset at every TP that divides its heads, every strategy, T = 2 and 8. A model of at
// most 1 GiB is allocated whole (the CPU backend's storage is lazily zeroed: address space
// only); a larger one layer by layer's worth, one layer times the layer count, as
// bench_footprint does (ScaleExactlyWithLayers shows the two agree). Sanitizer builds pay for
// the address space in shadow memory, hence the bound.
TEST(FootprintAllocations, EqualFormulaForEveryPreset) {
  int checked = 0, whole = 0;
  for (const PresetInfo& p : presets()) {
    for (int32_t tp : {1, 2, 4, 8}) {
      if (p.num_k_heads % tp != 0 || p.num_v_heads % tp != 0) continue;
      for (int32_t T : {2, 8}) {
        for (StrategyKind kind : all_strategies()) {
          PoolConfig c = config_of(std::string(p.name), tp, T, 2);
          const StrategyLayout l = make_layout(kind, c);
          const int32_t layers = c.geometry.layers;
          const bool allocate_whole = l.total_bytes() <= (int64_t{1} << 30);
          if (!allocate_whole) c.geometry.layers = 1;
          const StrategyLayout a = make_layout(kind, c);
          const AllocationReport r = make_cpu_backend(a.shape, 1)->allocations();
          const int64_t times = allocate_whole ? 1 : layers;
          SCOPED_TRACE(std::string(p.name) + " TP" + std::to_string(tp) + " T" + std::to_string(T) +
                       " " + std::string(to_string(kind)));
          EXPECT_EQ(r.total() * times, l.total_bytes());
          EXPECT_EQ(r.conv_bytes * times, l.shape.conv_bytes());
          EXPECT_EQ(r.ssm_bytes * times, l.shape.ssm_bytes());
          EXPECT_EQ(r.payload_bytes * times, l.payload_bytes);
          ++checked;
          whole += allocate_whole;
        }
      }
    }
  }
  EXPECT_GE(checked, 7 * 4 * 2 * 5);
  EXPECT_GE(whole, checked / 2);  // most models are allocated whole
}

// bench_footprint allocates one layer and multiplies: allocations scale exactly with layers.
TEST(FootprintAllocations, ScaleExactlyWithLayers) {
  for (StrategyKind kind : all_strategies()) {
    PoolConfig c = config_of("qwen3.5-27b", 4, 4, 5);
    const StrategyLayout full = make_layout(kind, c);
    c.geometry.layers = 1;
    const StrategyLayout one = make_layout(kind, c);
    EXPECT_EQ(make_cpu_backend(one.shape, 1)->allocations().total() * full.config.geometry.layers,
              make_cpu_backend(full.shape, 1)->allocations().total());
  }
}

// The address space the process maps agrees: at least the formula, at most the parameters and
// page rounding more.
TEST(FootprintAllocations, AllocatorWitnessAgrees) {
#if defined(SPECSTATE_TEST_ASAN)
  GTEST_SKIP() << "AddressSanitizer maps shadow memory beside every allocation";
#endif
  const StrategyLayout l =
      make_layout(StrategyKind::kScatter, config_of("qwen3-next-80b-a3b", 1, 4, 2));
  const int64_t before = bench::mapped_bytes();
  auto backend = make_cpu_backend(l.shape, 1);
  const int64_t taken = bench::mapped_bytes() - before;
  EXPECT_GE(taken, l.total_bytes());
  const ModelGeometry& g = l.config.geometry;
  const int64_t params = g.layers * (int64_t{g.conv_dim()} * g.conv_width + 2 * g.num_v_heads) * 4;
  EXPECT_LE(taken, l.total_bytes() + params + g.layers * 4 * 8192 + (1 << 20));
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, sep))
    out.push_back(item);
  return out;
}

TEST(FootprintCsv, RowsCarryTheLayoutBytes) {
  const PoolConfig c = config_of("qwen3-next-80b-a3b", 1, 4, 64);
  const std::vector<std::string> header = split(cli::footprint_csv_header(), ',');
  const std::vector<std::string> rows = split(cli::footprint_csv_rows(c), '\n');
  ASSERT_EQ(rows.size(), all_strategies().size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::vector<std::string> f = split(rows[i], ',');
    ASSERT_EQ(f.size(), header.size()) << rows[i];
    const StrategyLayout l = make_layout(all_strategies()[i], c);
    EXPECT_EQ(f[7], std::string(to_string(l.kind)));
    EXPECT_EQ(std::stoll(f[8]), l.pool_bytes);
    EXPECT_EQ(std::stoll(f[13]), l.total_bytes());
    if (l.kind != StrategyKind::kRing) {
      EXPECT_EQ(std::stoll(f[14]), verify_step_bytes(l, 4).state_total() * 64);
    } else {  // every token accepted: histories 4, 8, 12, 16, a fold at 16, then again
      int64_t cycle = 0;
      for (int32_t h : {4, 8, 12, 16})
        cycle += verify_step_bytes(l, 4, h).state_total();
      EXPECT_EQ(std::stoll(f[14]), cycle * 64 / 4);
    }
  }
  EXPECT_EQ(header[13], "total_bytes");
}

std::string percent(double before, double after) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * (before - after) / before);
  return buf;
}

TEST(FootprintCompare, ScatterToInlineSavesWhatTheLayoutsSay) {
  const PoolConfig c = config_of("qwen3-next-80b-a3b", 1, 4, 64);
  const std::string out = cli::footprint_compare(c, StrategyKind::kScatter, StrategyKind::kInline);
  const StrategyLayout b = make_layout(StrategyKind::kScatter, c);
  const StrategyLayout a = make_layout(StrategyKind::kInline, c);
  EXPECT_NE(out.find("before: scatter"), std::string::npos) << out;
  EXPECT_NE(out.find("after: inline"), std::string::npos) << out;
  const std::vector<std::string> lines = split(out, '\n');
  auto line_with = [&](const std::string& what) {
    for (const std::string& l : lines)
      if (l.rfind(what, 0) == 0) return l;
    return std::string();
  };
  const std::string memory = line_with("memory, total");
  EXPECT_NE(memory.find(percent(double(b.total_bytes()), double(a.total_bytes()))),
            std::string::npos)
      << memory;
  const std::string step = line_with("state bytes / verify step");
  EXPECT_NE(step.find(percent(7, 5)), std::string::npos) << step;  // 7 states -> 5 states
  const std::string states = line_with("states moved / request");
  EXPECT_NE(states.find("7.000"), std::string::npos) << states;
  EXPECT_NE(states.find("5.000"), std::string::npos) << states;
}

// A minimal XML check: every tag closes in order, attributes are quoted, one <svg> root.
struct XmlCheck {
  bool ok = true;
  std::string error;
  int elements = 0;
  std::vector<std::string> names;  // every element, in order
};

XmlCheck check_xml(const std::string& s) {
  XmlCheck r;
  std::vector<std::string> stack;
  size_t i = 0;
  auto fail = [&](const std::string& e) {
    r.ok = false;
    r.error = e + " at " + std::to_string(i);
    return r;
  };
  while ((i = s.find('<', i)) != std::string::npos) {
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return fail("unterminated tag");
    std::string tag = s.substr(i + 1, end - i - 1);
    if (tag.find('<') != std::string::npos) return fail("'<' inside a tag");
    size_t quotes = 0;
    for (char ch : tag)
      quotes += ch == '"';
    if (quotes % 2) return fail("unbalanced quotes");
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1))
        return fail("mismatched </" + tag.substr(1) + ">");
      stack.pop_back();
    } else {
      const bool self_closing = tag.back() == '/';
      const std::string name = tag.substr(0, tag.find_first_of(" /"));
      if (stack.empty() && r.elements > 0) return fail("second root element");
      ++r.elements;
      r.names.push_back(name);
      if (!self_closing) stack.push_back(name);
    }
    i = end + 1;
  }
  if (!stack.empty()) return fail("unclosed <" + stack.back() + ">");
  return r;
}

TEST(FootprintSvg, IsWellFormedWithOneLinePerStrategy) {
  const std::string svg = cli::footprint_svg(config_of("qwen3-next-80b-a3b", 1, 4, 1), 256, 2);
  const XmlCheck x = check_xml(svg);
  ASSERT_TRUE(x.ok) << x.error;
  ASSERT_FALSE(x.names.empty());
  EXPECT_EQ(x.names[0], "svg");
  EXPECT_EQ(std::count(x.names.begin(), x.names.end(), "polyline"),
            std::ptrdiff_t(all_strategies().size()));
  for (const char* text : {"Qwen3-Next-80B-A3B", "TP1", "T=4", "batch size", "GiB", "scatter",
                           "inline", "window", "replay", "deferred", "ring", "paged"}) {
    EXPECT_NE(svg.find(text), std::string::npos) << text;
  }
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(FootprintSvg, MinimalCheckCatchesBrokenXml) {
  EXPECT_FALSE(check_xml("<svg><g></svg>").ok);
  EXPECT_FALSE(check_xml("<svg><polyline points=\"1,2/></svg>").ok);
  EXPECT_TRUE(check_xml("<svg><g><line x1=\"0\"/></g></svg>").ok);
}

}  // namespace
}  // namespace specstate
