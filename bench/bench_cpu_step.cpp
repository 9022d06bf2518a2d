// CPU backend step throughput, per primitive and per strategy, against a single-thread memcpy
// timed in the same iterations (docs/performance.md, "CPU step throughput"); and the row
// digest's paths (`cpu_digest/...`, docs/performance-history.md, "The AVX-512 digest").
//
// Geometries: `tiny` (2 layers, in cache: per-call overhead) and one real GDN layer of
// Qwen3-Next at TP1 (H=16, HV=32, K=V=128, conv_dim 8192, W=4), T=4, `kBatch` requests per call.
// Each iteration runs one step on a different set of rows, rotating over >= 1 GiB of pool for the
// real layer (the L3 of the machine this was written on is 480 MiB), and then copies the same
// number of bytes (read + written) with memcpy between two rotating 512 MiB buffers. Only the
// step is the benchmark's time (UseManualTime); `memcpy_ratio` = median memcpy time / median
// step time = the step's bandwidth as a fraction of memcpy's, which survives a noisy machine.
//
// Bytes counted per request and layer, S = one state (SSM [HV,K,V] + conv window
// [conv_dim, W-1] bf16), P = one token's payload (core/numerics/payload_token.h), R(a) = what a
// replay of a stored tokens reads of their payload (their values, x of the last W-1), O = one
// token's output o [HV, V] bf16, a = 2:
//   verify_rows     read S, write T states, T outputs                 S + T*S + T*O
//   verify_window   read S, write T SSM + (W-2+T) conv columns, T*O
//   verify_payload  read S, write T payload tokens, T*O               S + T*P + T*O
//   verify_pending  read S + R(a), commit S, then as verify_payload   2S + R(a) + T*P + T*O
//   replay          read S + R(a), write S                            2S + R(a)
//   copy_rows       read S, write S                                   2S
// Strategy steps add up their primitives; their state and payload bytes are checked against
// core's verify_step_bytes (the accounting of `specstate footprint`) before timing.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/digest_lanes.h"
#include "core/geometry.h"
#include "core/strategy/strategy.h"

namespace specstate::bench {
namespace {

constexpr int32_t kT = 4;
constexpr int32_t kAccepted = 2;
constexpr int32_t kBatch = 4;
constexpr int32_t kRowsPerRequest = 1 + kT;  // working row, then T scratch / draft rows

enum class Step {
  kVerifyRows,
  kVerifyWindow,
  kVerifyPayload,
  kVerifyPending,
  kReplay,
  kCopyRows,
  kScatter,
  kInline,
  kWindow,
  kReplayStrategy,
  kDeferred
};

const char* step_name(Step s) {
  switch (s) {
    case Step::kVerifyRows:
      return "verify_rows";
    case Step::kVerifyWindow:
      return "verify_window";
    case Step::kVerifyPayload:
      return "verify_payload";
    case Step::kVerifyPending:
      return "verify_pending";
    case Step::kReplay:
      return "replay";
    case Step::kCopyRows:
      return "copy_rows";
    case Step::kScatter:
      return "strategy:scatter";
    case Step::kInline:
      return "strategy:inline";
    case Step::kWindow:
      return "strategy:window";
    case Step::kReplayStrategy:
      return "strategy:replay";
    case Step::kDeferred:
      return "strategy:deferred";
  }
  return "?";
}

bool uses_window(Step s) {
  return s == Step::kVerifyWindow || s == Step::kWindow;
}

PoolShape step_shape(const std::string& geometry, SsmDtype dtype, int32_t rows, bool window) {
  PoolShape s;
  s.geometry = make_geometry(geometry == "tiny" ? "tiny" : "qwen3-next-80b-a3b", 1);
  if (geometry != "tiny") s.geometry.layers = 1;
  s.ssm_dtype = dtype;
  s.state_rows = rows;
  s.conv_cols = s.geometry.conv_state_cols() + (window ? kT - 1 : 0);
  s.payload_slots = 0;
  s.payload_tokens = kT;
  return s;
}

// Bytes one step of one request reads + writes, all layers (see the file comment).
struct Bytes {
  int64_t state = 0, payload = 0, outputs = 0;
  int64_t total() const { return state + payload + outputs; }
  Bytes operator+(const Bytes& o) const {
    return {state + o.state, payload + o.payload, outputs + o.outputs};
  }
};

Bytes step_bytes(Step step, const PoolShape& shape) {
  const ModelGeometry& g = shape.geometry;
  const int64_t L = g.layers, col = int64_t{g.conv_dim()} * 2, wc = g.conv_state_cols();
  const int64_t S = L * (shape.ssm_row_bytes() + col * wc);
  const int64_t P = L * shape.payload_token().bytes();
  const int64_t Ra = L * shape.payload_token().replay_read_bytes(kAccepted, int(wc));
  const int64_t O = L * int64_t{g.num_v_heads} * g.head_v_dim * 2;
  switch (step) {
    case Step::kVerifyRows:
    case Step::kInline:
      return {S + kT * S, 0, kT * O};
    case Step::kVerifyWindow:
    case Step::kWindow:
      return {S + L * (kT * shape.ssm_row_bytes() + col * (wc - 1 + kT)), 0, kT * O};
    case Step::kVerifyPayload:
      return {S, kT * P, kT * O};
    case Step::kVerifyPending:
    case Step::kDeferred:
      return {2 * S, Ra + kT * P, kT * O};
    case Step::kReplay:
      return {2 * S, Ra, 0};
    case Step::kCopyRows:
      return {2 * S, 0, 0};
    case Step::kScatter:
      return step_bytes(Step::kVerifyRows, shape) + step_bytes(Step::kCopyRows, shape);
    case Step::kReplayStrategy:
      return step_bytes(Step::kVerifyPayload, shape) + step_bytes(Step::kReplay, shape);
  }
  return {};
}

// The strategy a step stands for, to check its bytes against core's accounting.
bool strategy_of(Step s, StrategyKind* kind) {
  switch (s) {
    case Step::kScatter:
      *kind = StrategyKind::kScatter;
      return true;
    case Step::kInline:
      *kind = StrategyKind::kInline;
      return true;
    case Step::kWindow:
      *kind = StrategyKind::kWindow;
      return true;
    case Step::kReplayStrategy:
      *kind = StrategyKind::kReplay;
      return true;
    case Step::kDeferred:
      *kind = StrategyKind::kDeferred;
      return true;
    default:
      return false;
  }
}

// Empty when the bench's byte count agrees with verify_step_bytes; else the disagreement.
std::string check_against_accounting(Step step, const PoolShape& shape) {
  StrategyKind kind;
  if (!strategy_of(step, &kind)) return "";
  PoolConfig config;
  config.geometry = shape.geometry;
  config.ssm_dtype = shape.ssm_dtype;
  config.tokens_per_verify = kT;
  config.pool_rows = 1;
  config.max_requests = 1;
  const StepBytes formula = verify_step_bytes(make_layout(kind, config), kAccepted);
  const Bytes mine = step_bytes(step, shape);
  if (formula.state_total() == mine.state &&
      formula.payload_read + formula.payload_write == mine.payload) {
    return "";
  }
  return std::string(step_name(step)) + ": bench counts " + std::to_string(mine.state) + " + " +
         std::to_string(mine.payload) + " bytes, verify_step_bytes " +
         std::to_string(formula.state_total()) + " + " +
         std::to_string(formula.payload_read + formula.payload_write);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// A backend whose rows hold non-zero states, and the calls of one step per rotation set.
class StepCase {
 public:
  StepCase(Step step, const std::string& geometry, SsmDtype dtype, int64_t rotation_bytes)
      : step_(step) {
    const PoolShape one = step_shape(geometry, dtype, 1, uses_window(step));
    const int64_t set_bytes = int64_t{kBatch} * kRowsPerRequest * one.state_row_bytes();
    sets_ = int32_t(std::clamp<int64_t>(rotation_bytes / set_bytes, 1, 4096));
    PoolShape shape =
        step_shape(geometry, dtype, kBatch * kRowsPerRequest * sets_, uses_window(step));
    shape.payload_slots = 2 * kBatch * sets_;
    backend_ = make_cpu_backend(shape, 7);
    for (int32_t r = 0; r < shape.state_rows; ++r)
      backend_->fill_row(r, 0x3c);  // 0x3c3c3c3c ~ 0.0115 (f32), 0x3c3c ~ 0.0115 (bf16)
    for (int32_t s = 0; s < sets_; ++s)
      fill_payload(s);
  }

  int32_t sets() const { return sets_; }
  const PoolShape& shape() const { return backend_->shape(); }

  void run(int32_t set) {
    switch (step_) {
      case Step::kVerifyRows:
      case Step::kInline:
        verify_rows(set, false);
        break;
      case Step::kScatter:
        verify_rows(set, true);
        copy_rows(set);
        break;
      case Step::kCopyRows:
        copy_rows(set);
        break;
      case Step::kVerifyWindow:
      case Step::kWindow:
        verify(set, VerifyMode::kWindow, false, 0);
        break;
      case Step::kVerifyPayload:
        verify(set, VerifyMode::kPayload, false, 1);
        break;
      case Step::kReplayStrategy:
        verify(set, VerifyMode::kPayload, false, 1);
        replay(set);
        break;
      case Step::kReplay:
        replay(set);
        break;
      case Step::kVerifyPending:
      case Step::kDeferred:
        verify(set, VerifyMode::kPayload, true, 1);
        break;
    }
  }

 private:
  int32_t working(int32_t set, int32_t i) const { return (set * kBatch + i) * kRowsPerRequest; }
  int32_t slot(int32_t set, int32_t i, int32_t buffer) const {
    return 2 * (set * kBatch + i) + buffer;
  }

  std::vector<VerifyTask> tasks(int32_t set) const {
    std::vector<VerifyTask> out(kBatch);
    for (int32_t i = 0; i < kBatch; ++i) {
      out[i].tokens = {uint64_t(set * kBatch + i), 100, kT};
      out[i].from = StateLoc::at(working(set, i));
    }
    return out;
  }

  // Token inputs of both payload buffers of every request of the set, for replay / pending.
  void fill_payload(int32_t set) {
    for (int32_t buffer = 0; buffer < 2; ++buffer) {
      std::vector<VerifyTask> t = tasks(set);
      for (int32_t i = 0; i < kBatch; ++i)
        t[i].payload_slot = slot(set, i, buffer);
      backend_->verify(VerifyMode::kPayload, t);
    }
  }

  // Inline: out = [working, drafts]; scatter: out = the T scratch rows after the working row.
  void verify_rows(int32_t set, bool scatter) {
    std::vector<VerifyTask> t = tasks(set);
    for (int32_t i = 0; i < kBatch; ++i) {
      for (int32_t j = 0; j < kT; ++j)
        t[i].out_rows[j] = working(set, i) + (scatter ? 1 + j : j);
    }
    backend_->verify(VerifyMode::kStateRows, t);
  }

  void verify(int32_t set, VerifyMode mode, bool pending, int32_t buffer) {
    std::vector<VerifyTask> t = tasks(set);
    for (int32_t i = 0; i < kBatch; ++i) {
      for (int32_t j = 0; j < kT; ++j)
        t[i].out_rows[j] = j == 0 ? working(set, i) : working(set, i) + j;
      t[i].payload_slot = slot(set, i, buffer);
      if (pending) t[i].pending = {slot(set, i, 0), kAccepted, working(set, i)};
    }
    backend_->verify(mode, t);
  }

  void replay(int32_t set) {
    std::vector<ReplayTask> t(kBatch);
    for (int32_t i = 0; i < kBatch; ++i)
      t[i] = {StateLoc::at(working(set, i)), slot(set, i, 0), kAccepted, working(set, i)};
    backend_->replay(t);
  }

  void copy_rows(int32_t set) {  // scatter's commit: scratch row a-1 -> working row
    std::vector<RowCopy> c(kBatch);
    for (int32_t i = 0; i < kBatch; ++i)
      c[i] = {StateLoc::at(working(set, i) + kAccepted), working(set, i)};
    backend_->copy_rows(c);
  }

  Step step_;
  int32_t sets_ = 1;
  std::unique_ptr<StateBackend> backend_;
};

// Two rotating buffers for the memcpy ceiling, touched once so no page fault is timed.
struct CopyBuffers {
  explicit CopyBuffers(int64_t size) : src(size, 1), dst(size, 2) {}
  std::vector<char> src, dst;
  int64_t offset = 0;
  // Copies bytes/2 (so that bytes are read + written); returns seconds.
  double copy(int64_t bytes) {
    const int64_t size = int64_t(src.size());
    const int64_t n = std::min<int64_t>(bytes / 2, size);
    if (offset + n > size) offset = 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(dst.data() + offset, src.data() + offset, size_t(n));
    benchmark::ClobberMemory();
    const auto t1 = std::chrono::steady_clock::now();
    offset += (n + 4095) / 4096 * 4096;
    return std::chrono::duration<double>(t1 - t0).count() * double(bytes / 2) / double(n);
  }
};

// 512 MiB each for the real layer (out of cache like its rotating rows), 1 MiB for tiny.
CopyBuffers& copy_buffers(bool large) {
  static CopyBuffers small_buffers(int64_t{1} << 20);
  if (!large) return small_buffers;
  static CopyBuffers large_buffers(int64_t{512} << 20);
  return large_buffers;
}

// Rows rotated over by the real layer: 1 GiB, or SPECSTATE_BENCH_ROTATION_MIB (profiling runs).
int64_t real_rotation_bytes() {
  const char* v = std::getenv("SPECSTATE_BENCH_ROTATION_MIB");
  return (v != nullptr ? std::atoll(v) : 1024) << 20;
}

void bm_step(benchmark::State& state, Step step, std::string geometry, SsmDtype dtype) {
  const int64_t rotation = geometry == "tiny" ? (int64_t{1} << 20) : real_rotation_bytes();
  StepCase c(step, geometry, dtype, rotation);
  if (const std::string e = check_against_accounting(step, c.shape()); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  const int64_t bytes = step_bytes(step, c.shape()).total() * kBatch;
  CopyBuffers& copy = copy_buffers(geometry != "tiny");
  std::vector<double> step_s, copy_s;
  int32_t set = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    c.run(set);
    const auto t1 = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(s);
    step_s.push_back(s);
    copy_s.push_back(copy.copy(bytes));
    set = (set + 1) % c.sets();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * bytes);
  const double step_median = median(step_s), copy_median = median(copy_s);
  using benchmark::Counter;
  state.counters["bytes_per_step"] = Counter(double(bytes), Counter::kDefaults, Counter::kIs1024);
  state.counters["step_bw_median"] =
      Counter(double(bytes) / step_median, Counter::kDefaults, Counter::kIs1024);
  state.counters["memcpy_bw_median"] =
      Counter(double(bytes) / copy_median, Counter::kDefaults, Counter::kIs1024);
  state.counters["memcpy_ratio"] = copy_median / step_median;
}

// The row digest (backends/cpu/digest_lanes.h), one path at a time, over the state of one
// Qwen3-Next TP8 request (36 layers of 4 value heads of 128 x 128 fp32: 9,437,184 bytes, the
// states the 225-event replay of docs/performance.md compares), rotating over 16 of them
// (151 MB, past the L3) so that each digest reads from memory as the replay's do.
using DigestPath = uint64_t (*)(const uint8_t*, int64_t, uint64_t);

void bm_digest(benchmark::State& state, DigestPath path) {
  constexpr int64_t kStateBytes = 36 * 4 * 128 * 128 * 4, kStates = 16;
  std::vector<uint64_t> buffer(kStateBytes / 8 * kStates);
  uint64_t x = 1;
  for (uint64_t& b : buffer)
    b = x = num::mix64(x);
  const auto* bytes = reinterpret_cast<const uint8_t*>(buffer.data());
  int64_t next = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    sum += path(bytes + next * kStateBytes, kStateBytes / 8, uint64_t(next));
    next = (next + 1) % kStates;
  }
  benchmark::DoNotOptimize(sum);
  state.SetBytesProcessed(int64_t(state.iterations()) * kStateBytes);
}

void register_digests() {
  benchmark::RegisterBenchmark("cpu_digest/scalar", bm_digest, cpu::digest_blocks_scalar)
      ->Unit(benchmark::kMillisecond);
#if defined(__AVX2__)
  benchmark::RegisterBenchmark("cpu_digest/avx2", bm_digest, cpu::digest_blocks_avx2)
      ->Unit(benchmark::kMillisecond);
#endif
#if defined(__AVX2__) && defined(__x86_64__)
  if (cpu::has_avx512_digest()) {
    benchmark::RegisterBenchmark("cpu_digest/avx512", bm_digest, cpu::digest_blocks_avx512)
        ->Unit(benchmark::kMillisecond);
  }
#endif
}

void register_all() {
  const Step steps[] = {Step::kVerifyRows,     Step::kVerifyWindow, Step::kVerifyPayload,
                        Step::kVerifyPending,  Step::kReplay,       Step::kCopyRows,
                        Step::kScatter,        Step::kInline,       Step::kWindow,
                        Step::kReplayStrategy, Step::kDeferred};
  for (const char* geometry : {"tiny", "real_layer"}) {
    for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
      for (Step step : steps) {
        const std::string name = std::string("cpu_step/") + geometry + "/" +
                                 std::string(to_string(dtype)) + "/" + step_name(step);
        benchmark::RegisterBenchmark(name.c_str(), bm_step, step, std::string(geometry), dtype)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  register_digests();
}

}  // namespace
}  // namespace specstate::bench

int main(int argc, char** argv) {
  specstate::bench::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
