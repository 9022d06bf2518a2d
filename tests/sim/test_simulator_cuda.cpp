// Generated traces replayed through every strategy on both backends in lockstep: every row of
// a CUDA lane must equal the CPU lane of the same strategy byte for byte after every event,
// and all strategies must agree on live states and outputs. Skips without a CUDA device.
#include <gtest/gtest.h>

#include "backends/registry.h"
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

SimOptions cpu_and_cuda_lanes() {
  SimOptions o;
  for (const char* backend : {"cpu", "cuda"}) {
    for (StrategyKind k : all_strategies())
      o.lanes.push_back({backend, k});
  }
  return o;
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

// A real layer geometry (K = V = 128) at TP 8 keeps rows small enough for a quick replay.
TEST_F(SimulatorCuda, RealGeometryTraceAgrees) {
  GeneratorOptions g;
  g.preset = "qwen3-next-80b-a3b";
  g.tp = 8;
  g.seed = 42;
  g.requests = 8;
  g.steps = 40;
  g.prompt_max = 48;
  SimOptions o = cpu_and_cuda_lanes();
  o.compare_at = CompareAt::kChecks;
  const ReplayReport r = replay(generate_trace(g), o);
  ASSERT_TRUE(r.agree) << r.divergence->message();
}

}  // namespace
}  // namespace specstate::sim
