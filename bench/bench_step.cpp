// Target-verify step bandwidth of the CUDA backend on the shapes of design section 9:
// 4 GDN layers of Qwen3-Next (HV=32, H=16, K=V=128, conv_dim 8192, W=4), T=4 tokens per request,
// batch 1/8/64/128, fp32 and bf16 SSM pools.
//
// What is timed: only the kernels a primitive enqueues (CudaBackend::launch of job tables
// uploaded beforehand by prepare_*), i.e. exactly the bit-exact kernels that verify / replay /
// copy_rows run, token inputs generated on the device inside the sequence kernel. CUDA events
// around each step, after warm-up; each iteration uses a different set of rows (rotating over
// at least 1 GiB of state) so no step finds its state in L2. A device-to-device copy of 1 GiB
// measured in the same run is the ceiling; "% of copy" = state bytes / time / copy bandwidth.
//
// Bytes counted (design section 9): state bytes read + written per request and layer, one
// state = SSM [HV, K, V] + conv window [conv_dim, W-1] bf16 (payload traffic is not counted):
//   inline     verify, T states written to [working, drafts]          1 + T
//   scatter    verify into T scratch rows + copy_rows commit          1 + T + 2
//   replay     payload verify (no state write) + replay commit        1 + 2
//   deferred   payload verify with the previous step's replay first   2
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_state_backend.h"
#include "core/geometry.h"

namespace specstate::bench {
namespace {

using cuda::CudaBackend;
using cuda::PreparedCopy;
using cuda::PreparedSequence;

constexpr int32_t kLayers = 4;
constexpr int32_t kT = 4;
constexpr int32_t kAccepted = 2;  // a of the scatter commit
constexpr int64_t kRotationBytes = int64_t{1} << 30;

enum class Kind {
  kInline,
  kScatter,
  kScatterVerify,
  kCommitCopy,
  kReplay,
  kPayloadVerify,
  kReplayOnly,
  kDeferred
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kInline:
      return "inline";
    case Kind::kScatter:
      return "scatter";
    case Kind::kScatterVerify:
      return "scatter.verify";
    case Kind::kCommitCopy:
      return "scatter.copy";
    case Kind::kReplay:
      return "replay";
    case Kind::kPayloadVerify:
      return "replay.verify";
    case Kind::kReplayOnly:
      return "replay.commit";
    case Kind::kDeferred:
      return "deferred";
  }
  return "?";
}

// States read + written per request and layer.
int states_moved(Kind k) {
  switch (k) {
    case Kind::kInline:
    case Kind::kScatterVerify:
      return 1 + kT;
    case Kind::kScatter:
      return 1 + kT + 2;
    case Kind::kCommitCopy:
    case Kind::kReplayOnly:
    case Kind::kDeferred:
      return 2;
    case Kind::kReplay:
      return 3;
    case Kind::kPayloadVerify:
      return 1;
  }
  return 0;
}

// Rows per request: working (+ T-1 drafts for inline, + T scratch rows for scatter).
int rows_per_request(Kind k) {
  switch (k) {
    case Kind::kInline:
      return kT;
    case Kind::kScatter:
    case Kind::kScatterVerify:
    case Kind::kCommitCopy:
      return 1 + kT;
    default:
      return 1;
  }
}

PoolShape bench_shape(SsmDtype dtype, int32_t rows, int32_t slots) {
  PoolShape s;
  s.geometry = make_geometry("qwen3-next-80b-a3b", 1);
  s.geometry.layers = kLayers;
  s.ssm_dtype = dtype;
  s.state_rows = rows;
  s.conv_cols = s.geometry.conv_state_cols();
  s.payload_slots = slots;
  s.payload_tokens = kT;
  return s;
}

int64_t state_bytes(const PoolShape& s) {  // one state of one layer
  return s.ssm_row_bytes() + int64_t{s.geometry.conv_dim()} * s.geometry.conv_state_cols() * 2;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Event pair timing one enqueue on a stream, in seconds.
class EventTimer {
 public:
  EventTimer() {
    CUDA_CHECK(cudaEventCreate(&start_));
    CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    CUDA_CHECK(cudaEventDestroy(start_));
    CUDA_CHECK(cudaEventDestroy(stop_));
  }
  template <class Fn>
  double time(cudaStream_t stream, Fn&& fn) {
    CUDA_CHECK(cudaEventRecord(start_, stream));
    fn();
    CUDA_CHECK(cudaEventRecord(stop_, stream));
    CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms * 1e-3;
  }

 private:
  cudaEvent_t start_, stop_;
};

// Device-to-device copy bandwidth (bytes read + written per second), median of 20.
double measure_copy_bandwidth() {
  static double cached = 0;
  if (cached > 0) return cached;
  const size_t bytes = size_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  CUDA_CHECK(cudaMalloc(&src, bytes));
  CUDA_CHECK(cudaMalloc(&dst, bytes));
  CUDA_CHECK(cudaMemset(src, 0x3c, bytes));
  EventTimer timer;
  std::vector<double> times;
  for (int i = 0; i < 23; ++i) {
    const double t = timer.time(nullptr, [&] {
      CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, nullptr));
    });
    if (i >= 3) times.push_back(t);
  }
  CUDA_CHECK(cudaFree(src));
  CUDA_CHECK(cudaFree(dst));
  cached = 2.0 * double(bytes) / median(times);
  return cached;
}

// One benchmark case: a backend whose rows hold real states, and per rotation set the
// prepared launches of one step.
class StepCase {
 public:
  StepCase(Kind kind, SsmDtype dtype, int32_t batch) : kind_(kind), batch_(batch) {
    const PoolShape one = bench_shape(dtype, 1, 0);
    const int64_t set_bytes = int64_t{batch} * rows_per_request(kind) * kLayers * state_bytes(one);
    sets_ = int32_t(std::max<int64_t>(2, (kRotationBytes + set_bytes - 1) / set_bytes));
    const int32_t rows = batch * rows_per_request(kind) * sets_;
    backend_ = std::make_unique<CudaBackend>(bench_shape(dtype, rows, 2 * batch * sets_), 7);
    fill_states();
    for (int32_t s = 0; s < sets_; ++s)
      prepare_set(s);
  }

  // Enqueues the step of rotation set `s`.
  void launch(int32_t s) {
    Set& set = sets_prepared_[s];
    switch (kind_) {
      case Kind::kScatter:
        backend_->launch(set.verify);
        backend_->launch(set.copy);
        break;
      case Kind::kCommitCopy:
        backend_->launch(set.copy);
        break;
      case Kind::kReplay:
        backend_->launch(set.verify);
        backend_->launch(set.replay);
        break;
      case Kind::kReplayOnly:
        backend_->launch(set.replay);
        break;
      default:
        backend_->launch(set.verify);
        break;
    }
  }
  int32_t sets() const { return sets_; }
  cudaStream_t stream() const { return backend_->stream(); }
  int64_t step_bytes() const {
    return int64_t{batch_} * kLayers * states_moved(kind_) * state_bytes(backend_->shape());
  }

 private:
  struct Set {
    PreparedSequence verify, replay;
    PreparedCopy copy;
  };
  int32_t row(int32_t set, int32_t r, int32_t k) const {
    return (set * batch_ + r) * rows_per_request(kind_) + k;
  }
  int32_t slot(int32_t set, int32_t r, int32_t which) const {
    return (set * batch_ + r) * 2 + which;
  }

  // Every working row gets a state from a 3-token prefill (never time on zeros); every payload
  // slot that a step reads gets the inputs of a payload verify.
  void fill_states() {
    std::vector<PrefillTask> prefills;
    std::vector<VerifyTask> payloads;
    for (int32_t s = 0; s < sets_; ++s) {
      for (int32_t r = 0; r < batch_; ++r) {
        PrefillTask p;
        p.tokens = {uint64_t(r), 0, 3};
        p.writes = {{3, row(s, r, 0)}};
        prefills.push_back(p);
        VerifyTask v;
        v.tokens = {uint64_t(r), 3, kT};
        v.from = StateLoc::at(row(s, r, 0));
        v.payload_slot = slot(s, r, 0);
        payloads.push_back(v);
      }
    }
    backend_->prefill(prefills);
    backend_->verify(VerifyMode::kPayload, payloads);
    cuda_synchronize_checked();
  }

  void prepare_set(int32_t s) {
    Set set;
    std::vector<VerifyTask> verify;
    std::vector<ReplayTask> replay;
    std::vector<RowCopy> copy;
    VerifyMode mode = VerifyMode::kStateRows;
    for (int32_t r = 0; r < batch_; ++r) {
      VerifyTask v;
      v.tokens = {uint64_t(r), 7, kT};
      v.from = StateLoc::at(row(s, r, 0));
      switch (kind_) {
        case Kind::kInline:
          for (int j = 0; j < kT; ++j)
            v.out_rows[j] = row(s, r, j);
          break;
        case Kind::kScatter:
        case Kind::kScatterVerify:
        case Kind::kCommitCopy:
          for (int j = 0; j < kT; ++j)
            v.out_rows[j] = row(s, r, 1 + j);
          copy.push_back({StateLoc::at(row(s, r, kAccepted)), row(s, r, 0)});
          break;
        case Kind::kReplay:
        case Kind::kPayloadVerify:
        case Kind::kReplayOnly:
          mode = VerifyMode::kPayload;
          v.payload_slot = slot(s, r, 1);
          replay.push_back({StateLoc::at(row(s, r, 0)), slot(s, r, 0), kT, row(s, r, 0)});
          break;
        case Kind::kDeferred:
          mode = VerifyMode::kPayload;
          v.payload_slot = slot(s, r, 1);
          v.pending = {slot(s, r, 0), kT, row(s, r, 0)};
          break;
      }
      verify.push_back(v);
    }
    // Check the calls once through the public primitives (argument checks, a real run).
    backend_->verify(mode, verify);
    if (!copy.empty()) backend_->copy_rows(copy);
    if (!replay.empty()) backend_->replay(replay);
    backend_->prepare_verify(mode, verify, set.verify);
    backend_->prepare_copy(copy, set.copy);
    backend_->prepare_replay(replay, set.replay);
    sets_prepared_.push_back(std::move(set));
  }

  Kind kind_;
  int32_t batch_;
  int32_t sets_ = 0;
  std::unique_ptr<CudaBackend> backend_;
  std::vector<Set> sets_prepared_;
};

struct Summary {
  double seconds = 0, bytes = 0;
};
std::map<std::string, Summary>& summaries() {
  static std::map<std::string, Summary> s;
  return s;
}

std::string case_key(Kind kind, SsmDtype dtype, int32_t batch) {
  return std::string(kind_name(kind)) + "/" + (dtype == SsmDtype::kF32 ? "fp32" : "bf16") + "/" +
         std::to_string(batch);
}

void BM_Step(benchmark::State& state, Kind kind, SsmDtype dtype) {
  const int32_t batch = int32_t(state.range(0));
  StepCase step(kind, dtype, batch);
  EventTimer timer;
  for (int i = 0; i < 3; ++i)
    step.launch(i % step.sets());  // warm-up
  CUDA_CHECK(cudaStreamSynchronize(step.stream()));
  std::vector<double> times;
  int32_t set = 0;
  for (auto _ : state) {
    const double t = timer.time(step.stream(), [&] { step.launch(set); });
    set = (set + 1) % step.sets();
    state.SetIterationTime(t);
    times.push_back(t);
  }
  cuda_synchronize_checked();
  const double copy_bw = measure_copy_bandwidth();
  const double t = median(times);
  const double bytes = double(step.step_bytes());
  state.SetBytesProcessed(int64_t(bytes) * state.iterations());
  state.counters["step_us"] = benchmark::Counter(t * 1e6);
  state.counters["state_GBps"] = benchmark::Counter(bytes / t / 1e9);
  state.counters["pct_of_copy"] = benchmark::Counter(100.0 * bytes / t / copy_bw);
  state.counters["state_MiB"] = benchmark::Counter(bytes / 1048576.0, benchmark::Counter::kDefaults,
                                                   benchmark::Counter::kIs1024);
  summaries()[case_key(kind, dtype, batch)] = {t, bytes};
}

void BM_Copy(benchmark::State& state) {
  const double bw = measure_copy_bandwidth();
  const size_t bytes = size_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  CUDA_CHECK(cudaMalloc(&src, bytes));
  CUDA_CHECK(cudaMalloc(&dst, bytes));
  EventTimer timer;
  for (auto _ : state) {
    state.SetIterationTime(timer.time(nullptr, [&] {
      CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, nullptr));
    }));
  }
  CUDA_CHECK(cudaFree(src));
  CUDA_CHECK(cudaFree(dst));
  state.SetBytesProcessed(int64_t(2 * bytes) * state.iterations());
  state.counters["copy_GBps_median"] = benchmark::Counter(bw / 1e9);
}

// tokenspeed "after" (PR #159, inline) anchor times in microseconds, design section 9.
double anchor_after_us(SsmDtype dtype, int32_t batch) {
  static const std::map<int32_t, double> f32{{1, 66}, {8, 174}, {64, 1147}, {128, 2225}};
  static const std::map<int32_t, double> b16{{1, 56}, {8, 110}, {64, 733}, {128, 1414}};
  const auto& m = dtype == SsmDtype::kF32 ? f32 : b16;
  const auto it = m.find(batch);
  return it == m.end() ? 0.0 : it->second;
}

void print_summary() {
  const double copy_bw = measure_copy_bandwidth();
  std::printf("\ncopy ceiling: %.0f GB/s (read + write)\n", copy_bw / 1e9);
  std::printf("%-16s %-5s %6s %10s %10s %8s %12s %10s\n", "step", "dtype", "batch", "time_us",
              "GB/s", "%copy", "anchor_us", "x_anchor");
  for (const auto& [key, s] : summaries()) {
    const auto a = key.find('/'), b = key.rfind('/');
    const std::string kind = key.substr(0, a), dtype = key.substr(a + 1, b - a - 1);
    const int32_t batch = std::stoi(key.substr(b + 1));
    const double anchor =
        anchor_after_us(dtype == "fp32" ? SsmDtype::kF32 : SsmDtype::kBF16, batch);
    std::printf("%-16s %-5s %6d %10.1f %10.0f %7.1f%% %12.0f %10.2f\n", kind.c_str(), dtype.c_str(),
                batch, s.seconds * 1e6, s.bytes / s.seconds / 1e9,
                100.0 * s.bytes / s.seconds / copy_bw, anchor,
                anchor > 0 ? s.seconds * 1e6 / anchor : 0.0);
  }
}

void register_all() {
  benchmark::RegisterBenchmark("copy_d2d_1GiB", BM_Copy)->UseManualTime()->Iterations(20);
  for (Kind kind : {Kind::kInline, Kind::kScatter, Kind::kScatterVerify, Kind::kCommitCopy,
                    Kind::kReplay, Kind::kPayloadVerify, Kind::kReplayOnly, Kind::kDeferred}) {
    for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
      const std::string name =
          std::string(kind_name(kind)) + "/" + (dtype == SsmDtype::kF32 ? "fp32" : "bf16");
      benchmark::RegisterBenchmark(name.c_str(), BM_Step, kind, dtype)
          ->ArgName("batch")
          ->Args({1})
          ->Args({8})
          ->Args({64})
          ->Args({128})
          ->UseManualTime()
          ->Iterations(30)
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace
}  // namespace specstate::bench

int main(int argc, char** argv) {
  if (specstate::cuda_device_count() == 0) {
    std::fprintf(stderr, "bench_step: no CUDA device\n");
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  specstate::bench::register_all();
  benchmark::RunSpecifiedBenchmarks();
  specstate::bench::print_summary();
  benchmark::Shutdown();
  return 0;
}
