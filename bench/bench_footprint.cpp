// Memory each strategy allocates, measured from a real backend and checked against the
// accounting formula (make_layout, docs/strategies.md), for every model preset.
//
// Real configurations are far larger than a test machine (Qwen3.5-397B at TP1, batch 256, T=8,
// scatter: 855 GiB), so each case allocates ONE GDN layer of the configuration: every tensor a
// backend holds is per layer, so the whole model takes exactly `layers` times as much (checked
// on small configurations by tests/footprint). The CPU backend's storage is an anonymous mapping
// whose pages cost memory only once written, so even one 19 GiB layer is allocated in
// microseconds.
//
// Per case, counters (bytes, kIs1024):
//   layer_alloc    what the backend allocated for one layer (StateBackend::allocations())
//   taken          how much the process's mapped address space grew while the backend was built
//                  (VmSize, bench/mapped_bytes.h), a witness that includes the layer's
//                  parameters and page rounding
//   pool, draft, scratch, inspect, payload, total
//                  the model's bytes per category = layer_alloc's rows x row bytes x layers
// and the case aborts (SkipWithError, non-zero exit) when layer_alloc differs from the formula
// by one byte, or `taken` falls outside [formula, formula + slack].
// With a CUDA device, cuda/... cases report as `taken` the device memory really taken
// (cudaMemGetInfo before and after), which cudaMalloc rounds up to 2 MiB pages per tensor.
//
// Default: a short sweep (every preset at TP1 and TP8, batch 1 and 256, T=4), for CI.
// SPECSTATE_BENCH_FULL=1: every preset x TP 1,2,4,8 x batch 1,2,4..256 x T 2..8.
#include <benchmark/benchmark.h>

#include "bench/mapped_bytes.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/registry.h"
#include "core/errors.h"
#include "core/geometry.h"
#include "core/strategy/strategy.h"

namespace specstate::bench {
namespace {

int g_mismatches = 0;  // any mismatch makes the program exit 1, so CI fails loudly

void fail(benchmark::State& state, const std::string& name, const std::string& message) {
  std::fprintf(stderr, "FOOTPRINT MISMATCH %s: %s\n", name.c_str(), message.c_str());
  state.SkipWithError(message.c_str());
  ++g_mismatches;
}

struct Case {
  std::string preset;
  int32_t tp = 1, batch = 1, T = 4;
  StrategyKind kind = StrategyKind::kScatter;
  std::string backend = "cpu";
  std::string name;  // the benchmark's
};

PoolConfig case_config(const Case& c) {
  PoolConfig config;
  config.geometry = make_geometry(c.preset, c.tp);
  config.ssm_dtype = SsmDtype::kF32;
  config.tokens_per_verify = c.T;
  config.max_requests = c.batch;
  config.pool_rows = 2 * c.batch;  // as `specstate footprint` defaults
  return config;
}

// What the allocator may add around one layer: its parameters (conv taps fp32 [conv_dim, W],
// A_log fp32 [HV] and dt_bias fp32 [HV, A], each in its own block) and per-block page rounding.
int64_t cpu_slack(const PoolShape& shape) {
  const ModelGeometry& g = shape.geometry;
  const int64_t params = int64_t{g.conv_dim()} * g.conv_width * 4 +
                         int64_t{g.num_v_heads} * (1 + g.decay_values_per_head()) * 4;
  return params + 64 * 4096;
}

// Bytes the device really took to build `shape`'s backend; -1 without a device.
int64_t cuda_taken(const PoolShape& shape, AllocationReport* report) {
  const int64_t before = backend_memory_limit("cuda").bytes;
  auto backend = make_backend("cuda", shape, 1);
  const int64_t after = backend_memory_limit("cuda").bytes;
  *report = backend->allocations();
  return before - after;
}

void set_bytes(benchmark::State& state, const char* name, int64_t bytes) {
  state.counters[name] =
      benchmark::Counter(double(bytes), benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
}

void bm_footprint(benchmark::State& state, Case c) {
  const PoolConfig config = case_config(c);
  const StrategyLayout model = make_layout(c.kind, config);
  PoolConfig one = config;
  one.geometry.layers = 1;
  const StrategyLayout layer = make_layout(c.kind, one);
  const int64_t formula = layer.shape.total_bytes();

  AllocationReport report;
  int64_t witness = 0, slack = 0;
  for (auto _ : state) {
    if (c.backend == "cpu") {
      const int64_t before = mapped_bytes();
      auto backend = make_cpu_backend(layer.shape, 1);
      witness = mapped_bytes() - before;
      report = backend->allocations();
      slack = cpu_slack(layer.shape);
    } else {
      try {
        witness = cuda_taken(layer.shape, &report);
      } catch (const InputError& e) {  // a geometry the kernels do not run (a recurrence)
        state.SkipWithError(e.what());
        return;
      }
      slack = 8 * (int64_t{2} << 20) + (int64_t{64} << 20);  // 2 MiB pages + parameters
    }
  }
  const int64_t expect_state = layer.shape.conv_bytes() + layer.shape.ssm_bytes();
  if (report.total() != formula || report.conv_bytes + report.ssm_bytes != expect_state ||
      report.payload_bytes != layer.shape.payload_bytes()) {
    fail(state, c.name,
         "allocated " + std::to_string(report.total()) + " bytes, formula " +
             std::to_string(formula));
    return;
  }
  if (witness < formula || witness > formula + slack) {
    fail(state, c.name,
         "allocator took " + std::to_string(witness) + " bytes, formula " +
             std::to_string(formula) + " (+ at most " + std::to_string(slack) + ")");
    return;
  }
  // Categories are row ranges of the same tensors: measured bytes per row x rows x layers.
  const int64_t row = (report.conv_bytes + report.ssm_bytes) / layer.shape.state_rows;
  const int64_t L = config.geometry.layers;
  set_bytes(state, "layer_alloc", report.total());
  set_bytes(state, "taken", witness);
  set_bytes(state, "pool", row * config.pool_rows * L);
  set_bytes(state, "draft", row * model.draft_rows * L);
  set_bytes(state, "scratch", row * model.scratch_rows * L);
  set_bytes(state, "inspect", row * model.inspect_rows * L);
  set_bytes(state, "payload", report.payload_bytes * L);
  set_bytes(state, "total", report.total() * L);
  if (report.total() * L != model.total_bytes()) {
    fail(state, c.name, "layer_alloc x layers differs from the model's formula");
  }
}

bool full_sweep() {
  const char* v = std::getenv("SPECSTATE_BENCH_FULL");
  return v != nullptr && std::string(v) == "1";
}

void register_all() {
  const bool full = full_sweep();
  const std::vector<int32_t> tps = full ? std::vector<int32_t>{1, 2, 4, 8} : std::vector{1, 8};
  std::vector<int32_t> batches = {1, 256};
  if (full) batches = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  const std::vector<int32_t> Ts = full ? std::vector<int32_t>{2, 3, 4, 5, 6, 7, 8} : std::vector{4};
  std::vector<std::string> backends = {"cpu"};
  if (cuda_available()) backends.push_back("cuda");
  for (const PresetInfo& p : presets()) {
    if (p.name == "tiny") continue;
    for (int32_t tp : tps) {
      try {
        make_geometry(p.name, tp);
      } catch (const InputError& e) {
        std::fprintf(stderr, "skipped %s TP%d: %s\n", std::string(p.name).c_str(), tp, e.what());
        continue;
      }
      for (const std::string& b : backends) {
        for (int32_t batch : batches) {
          for (int32_t T : Ts) {
            for (StrategyKind kind : all_strategies()) {
              Case c{std::string(p.name), tp, batch, T, kind, b, ""};
              c.name = b + "/" + c.preset + "/tp" + std::to_string(tp) + "/b" +
                       std::to_string(batch) + "/T" + std::to_string(T) + "/" +
                       std::string(to_string(kind));
              benchmark::RegisterBenchmark(c.name.c_str(), bm_footprint, c)->Iterations(1);
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace specstate::bench

int main(int argc, char** argv) {
  specstate::bench::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return specstate::bench::g_mismatches == 0 ? 0 : 1;
}
