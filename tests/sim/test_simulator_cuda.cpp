// Generated traces replayed through every strategy on both backends in lockstep: every row of
// a CUDA lane must equal the CPU lane of the same strategy byte for byte after every event,
// and all strategies must agree on live states and outputs. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <vector>

#include "backends/registry.h"
#include "core/geometry.h"
#include "sim/generator.h"
#include "sim/simulator.h"

namespace specstate::sim {
namespace {

class SimulatorCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  }
};

// A CPU and a CUDA lane of each of `strategies`, compared after every event.
SimOptions cpu_and_cuda_lanes(const std::vector<StrategyKind>& strategies = all_strategies()) {
  SimOptions o;
  for (const char* backend : {"cpu", "cuda"}) {
    for (StrategyKind k : strategies)
      o.lanes.push_back({backend, k});
  }
  return o;
}

// A short trace of a real preset at TP 8 (K = V = 128 per rank, rows small enough for a quick
// replay): 8 requests, prompts of at most 48 tokens.
GeneratorOptions real_preset_at_tp8(const char* preset, uint64_t seed, int32_t steps) {
  GeneratorOptions g;
  g.preset = preset;
  g.tp = 8;
  g.seed = seed;
  g.requests = 8;
  g.steps = steps;
  g.prompt_max = 48;
  return g;
}

TEST_F(SimulatorCuda, GeneratedTracesAgreeAcrossBackendsAndStrategies) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    GeneratorOptions g;
    g.seed = seed;
    g.requests = 24;
    g.steps = 200;
    g.ssm_dtype = seed % 2 ? SsmDtype::kF32 : SsmDtype::kBF16;
    g.draft_tokens = 1 + int32_t(seed % 4);
    const ReplayReport r = replay(generate_trace(g), cpu_and_cuda_lanes());
    ASSERT_TRUE(r.agree) << "seed " << seed << "\n" << r.divergence->message();
  }
}

// Overlap traces (discarded entries, reordered batches) on both backends, each strategy
// scheduled synchronously and with overlap: guarded variants resolved by the device's counts
// (the CUDA kernels read the table themselves) give the CPU's bytes and the synchronous lanes'.
TEST_F(SimulatorCuda, OverlapTracesAgreeAcrossBackendsSchedulesAndStrategies) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    GeneratorOptions g;
    g.seed = seed;
    g.requests = 24;
    g.steps = 150;
    g.overlap = true;
    g.ssm_dtype = seed % 2 ? SsmDtype::kF32 : SsmDtype::kBF16;
    g.draft_tokens = 1 + int32_t(seed % 4);
    SimOptions o;
    for (const char* backend : {"cpu", "cuda"}) {
      for (Schedule schedule : {Schedule::synchronous(), Schedule::overlap()}) {
        for (StrategyKind k : all_strategies())
          o.lanes.push_back({backend, k, Fault::kNone, schedule});
      }
    }
    const ReplayReport r = replay(generate_trace(g), o);
    ASSERT_TRUE(r.agree) << "seed " << seed << "\n" << r.divergence->message();
  }
}

// Draft trees on both backends: every strategy that runs trees, CPU and CUDA lanes.
TEST_F(SimulatorCuda, GeneratedTreeTracesAgreeAcrossBackendsAndStrategies) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    GeneratorOptions g;
    g.seed = seed;
    g.requests = 24;
    g.steps = 150;
    g.ssm_dtype = seed % 2 ? SsmDtype::kF32 : SsmDtype::kBF16;
    g.tree = seed <= 2 ? std::vector<int32_t>{2, 2, 2} : std::vector<int32_t>{4, 2, 2, 1};
    g.draft_tokens = int32_t(g.tree.size()) + 1;
    SimOptions o;
    for (const char* backend : {"cpu", "cuda"}) {
      for (StrategyKind k : strategies_running(/*tree_nodes=*/1))
        o.lanes.push_back({backend, k});
    }
    o.ring.slots = 64;  // the history and up to 45 nodes
    const ReplayReport r = replay(generate_trace(g), o);
    ASSERT_TRUE(r.agree) << "seed " << seed << "\n" << r.divergence->message();
  }
}

// A real layer geometry with trees: K = V = 128, 4+8+16 = 29 nodes, restarts at every branch.
TEST_F(SimulatorCuda, RealGeometryTreeTraceAgrees) {
  GeneratorOptions g = real_preset_at_tp8("qwen3-next-80b-a3b", 43, 30);
  g.tree = {4, 2, 2};
  g.ssm_dtype = SsmDtype::kBF16;
  g.check_every = 3;
  SimOptions o =
      cpu_and_cuda_lanes({StrategyKind::kScatter, StrategyKind::kDeferred, StrategyKind::kRing});
  o.compare_at = CompareAt::kChecks;
  o.ring.slots = 48;  // the history and 29 nodes
  const ReplayReport r = replay(generate_trace(g), o);
  ASSERT_TRUE(r.agree) << r.divergence->message();
}

// Kimi Delta Attention (a decay per state row) on the tiny geometry: chains, overlap schedules
// and trees through every strategy on both backends.
trace::Trace tiny_kda_trace(GeneratorOptions g) {
  trace::Trace t = generate_trace(g);
  const ModelGeometry tiny = make_geometry("tiny", 1);
  t.header.preset.clear();
  t.header.geometry = trace::CustomGeometry{
      tiny.layers,     tiny.num_k_heads, tiny.num_v_heads, tiny.head_k_dim,
      tiny.head_v_dim, tiny.conv_dim(),  tiny.conv_width,  RecurrenceKind::kKimiDeltaAttention};
  t.header.version = t.header.lowest_version();
  return t;
}

TEST_F(SimulatorCuda, KdaTracesAgreeAcrossBackendsSchedulesAndStrategies) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    GeneratorOptions g;
    g.seed = seed;
    g.requests = 16;
    g.steps = 120;
    g.ssm_dtype = seed % 2 ? SsmDtype::kF32 : SsmDtype::kBF16;
    g.draft_tokens = 1 + int32_t(seed % 4);
    g.overlap = seed % 3 == 0;
    if (seed % 3 == 1) {
      g.tree = {2, 2};
      g.draft_tokens = 2;
    }
    SimOptions o;
    for (const char* backend : {"cpu", "cuda"}) {
      for (Schedule schedule : {Schedule::synchronous(), Schedule::overlap()}) {
        if (schedule.is_overlap() && g.overlap == 0) continue;
        for (StrategyKind k : strategies_running(g.tree.empty() ? 0 : 1))
          o.lanes.push_back({backend, k, Fault::kNone, schedule});
      }
    }
    const ReplayReport r = replay(tiny_kda_trace(g), o);
    ASSERT_TRUE(r.agree) << "seed " << seed << "\n" << r.divergence->message();
  }
}

// Kimi Linear's KDA layers at TP 8 (H = HV = 4, K = V = 128 per rank): the kernels' K = 128 path.
TEST_F(SimulatorCuda, KimiLinearTraceAgrees) {
  GeneratorOptions g = real_preset_at_tp8("kimi-linear-48b-a3b", 44, 30);
  g.ssm_dtype = SsmDtype::kBF16;
  g.check_every = 3;
  SimOptions o =
      cpu_and_cuda_lanes({StrategyKind::kInline, StrategyKind::kDeferred, StrategyKind::kRing});
  o.compare_at = CompareAt::kChecks;
  const ReplayReport r = replay(generate_trace(g), o);
  ASSERT_TRUE(r.agree) << r.divergence->message();
}

// A real layer geometry (K = V = 128) at TP 8 keeps rows small enough for a quick replay.
TEST_F(SimulatorCuda, RealGeometryTraceAgrees) {
  const GeneratorOptions g = real_preset_at_tp8("qwen3-next-80b-a3b", 42, 40);
  SimOptions o = cpu_and_cuda_lanes();
  o.compare_at = CompareAt::kChecks;
  const ReplayReport r = replay(generate_trace(g), o);
  ASSERT_TRUE(r.agree) << r.divergence->message();
}

// A decode rank other than 0 (its inputs and parameters the model's slice) receiving requests
// from a prefill instance at another TP degree: tiny's rank 1 of 2 from TP 1 in both dtypes, and
// Qwen3-Next's rank 5 of 8 from TP 2 (layers 0 and 17); the handed-over rows and every state
// after them agree across backends and strategies.
TEST_F(SimulatorCuda, HandoffTracesOnARankAgree) {
  for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
    GeneratorOptions g;
    g.tp = 2;
    g.rank = 1;
    g.prefill_tp = 1;
    g.seed = 45;
    g.requests = 24;
    g.steps = 150;
    g.ssm_dtype = dtype;
    const ReplayReport r = replay(generate_trace(g), cpu_and_cuda_lanes());
    ASSERT_TRUE(r.agree) << r.divergence->message();
  }
  GeneratorOptions g = real_preset_at_tp8("qwen3-next-80b-a3b", 46, 30);
  g.rank = 5;
  g.prefill_tp = 2;
  SimOptions o =
      cpu_and_cuda_lanes({StrategyKind::kInline, StrategyKind::kReplay, StrategyKind::kRing});
  o.layers = {0, 17};
  const ReplayReport r = replay(generate_trace(g), o);
  ASSERT_TRUE(r.agree) << r.divergence->message();
}

}  // namespace
}  // namespace specstate::sim
