// Target-verify step bandwidth of the CUDA backend on the shapes the tokenspeed anchors are timed
// at: 4 GDN layers of Qwen3-Next (HV=32, H=16, K=V=128, conv_dim 8192, W=4), T=4 tokens per
// request, batch 1/8/64/128, fp32 and bf16 SSM pools.
//
// What is timed: only the kernels a primitive enqueues (CudaBackend::launch of job tables
// uploaded beforehand by prepare_*), i.e. exactly the bit-exact kernels that verify / replay /
// copy_rows run, token inputs generated on the device inside the sequence kernel. CUDA events
// around each step, after warm-up; each iteration uses a different set of rows (rotating over
// at least 1 GiB of state) so no step finds its state in L2. A device-to-device copy of 1 GiB
// measured in the same run is the ceiling; "% of copy" = state bytes / time / copy bandwidth.
//
// Bytes counted: state bytes read + written per request and layer, one
// state = SSM [HV, K, V] + conv window [conv_dim, W-1] bf16, plus the payload traffic: a payload
// verify writes each of its T tokens whole (core/numerics/payload_token.h: x bf16, alpha, k_hat
// and delta fp32), a replay of n stored tokens reads their values and x of the last W-1
// (PayloadToken::replay_read_bytes). States moved:
//   inline     verify, T states written to [working, drafts]          1 + T
//   scatter    verify into T scratch rows + copy_rows commit          1 + T + 2
//   replay     payload verify (no state write) + replay commit        1 + 2
//   deferred   payload verify with the previous step's replay first   2
//   ring       payload verify after replaying 2T history tokens       1
//   ring.fold  the same after 4T = 16 (W_RING) tokens, folded first   2
//   inline.tree  a verify of the draft tree 2,2,2 (15 nodes, depth 3 = T-1, breadth-first
//                order) into 15 rows, as the inline strategy runs it     1 + 15
// (the ring cycles through histories T, 2T, 3T, 4T with every token accepted at T = 4, and
// folds at 4T: ring is a step inside the cycle, ring.fold its last)
//
// Tokens per request and layer that a step computes (the whole step) and replays (from the
// values their verify stored: core/numerics/gdn_step.h, replay_row). In this benchmark every
// replay, and every pending replay of a deferred step, covers a = T tokens (a payload slot holds
// T); kAccepted only picks the scratch row the scatter commits:
//                                                   computed  replayed
//   inline, scatter, scatter.verify, replay.verify   T         0
//   scatter.copy                                     0         0        copy_rows only
//   replay                                           T         a        payload verify, replay
//   replay.commit                                    0         a
//   deferred                                         T         a        pending replay first
//   ring                                             T         2T       history, then verify
//   ring.fold                                        T         4T       history committed
//   inline.tree                                      15        0        one update per node (depth
//                                                                      first, the 7 nodes that are
//                                                                      not a first child read their
//                                                                      parent's row on an fp32
//                                                                      pool; on bf16 they restart
//                                                                      from the base and run 17
//                                                                      ancestor updates again)
//
// Roof of a step = max(memory time, FP32 work time):
//   memory time = bytes counted above / copy bandwidth of this run;
//   FP32 work   = fma-class operations per SSM state element [HV, K, V]: 4 per computed token
//                 (decay, k.h, rank-1 update, q.h), 2 per replayed token (decay, rank-1
//                 update), x batch x layers, at SMs x FP32 lanes per SM x SM clock (read from
//                 the device at run time, clock = cudaDevAttrClockRate, the boost clock). Conv,
//                 norms and gates are not counted (about 2 % of a computed token's operations).
//
// Anchors: the peers' kernels timed in the same device call (tokenspeed's by anchor_bench.py,
// vLLM's by anchor_triton.py), read from the JSON lines they printed, at the path given as
// --anchors=path or SPECSTATE_ANCHORS=path (none: no anchor columns). The scripts are not part
// of this repository: bench/device_run.sh runs them from $ANCHOR_DIR. Which anchor each step is
// compared with: bench/step_anchors.h.
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "core/draft_tree.h"
#include "core/geometry.h"
#include "step_anchors.h"

namespace specstate::bench {
namespace {

using cuda::CudaBackend;
using cuda::PreparedCopy;
using cuda::PreparedSequence;

constexpr int32_t kLayers = 4;
constexpr int32_t kT = 4;
constexpr int32_t kAccepted = 2;  // a of the scatter commit
constexpr int64_t kRotationBytes = int64_t{1} << 30;
constexpr int kOpsComputed = 4;  // roof's FP32 work per SSM state element and computed token
constexpr int kOpsReplayed = 2;  // ... and per token replayed from stored values

enum class Kind {
  kInline,
  kScatter,
  kScatterVerify,
  kCommitCopy,
  kReplay,
  kPayloadVerify,
  kReplayOnly,
  kDeferred,
  kRing,
  kRingFold,
  kInlineTree
};

// inline.tree's draft tree: top-2 on each of 3 levels (EAGLE-2's static tree at T = 4).
const DraftTree& bench_tree() {
  static const DraftTree tree = tree_of_shape({2, 2, 2});
  return tree;
}

// Ring payload positions (the ring strategy's default) and the history each ring step replays.
constexpr int32_t kRingSlots = 32;
int32_t ring_history(Kind k) {
  return k == Kind::kRingFold ? 4 * kT : k == Kind::kRing ? 2 * kT : 0;
}

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
    case Kind::kRing:
      return "ring";
    case Kind::kRingFold:
      return "ring.fold";
    case Kind::kInlineTree:
      return "inline.tree";
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
    case Kind::kRingFold:
      return 2;
    case Kind::kReplay:
      return 3;
    case Kind::kPayloadVerify:
    case Kind::kRing:
      return 1;
    case Kind::kInlineTree:
      return 1 + bench_tree().nodes();
  }
  return 0;
}

// Tokens the step computes per request and layer (file comment).
int tokens_computed(Kind k) {
  switch (k) {
    case Kind::kCommitCopy:
    case Kind::kReplayOnly:
      return 0;
    case Kind::kInlineTree:
      return bench_tree().nodes();
    default:
      return kT;
  }
}

// Tokens the step replays from stored values per request and layer: every replay here, and
// every pending replay of a deferred step, covers a = kT tokens.
int tokens_replayed(Kind k) {
  switch (k) {
    case Kind::kReplay:
    case Kind::kReplayOnly:
    case Kind::kDeferred:
      return kT;
    case Kind::kRing:
    case Kind::kRingFold:
      return ring_history(k);
    default:
      return 0;
  }
}

// Whether the step's verify writes its tokens to a payload slot.
bool writes_payload(Kind k) {
  switch (k) {
    case Kind::kReplay:
    case Kind::kPayloadVerify:
    case Kind::kDeferred:
    case Kind::kRing:
    case Kind::kRingFold:
      return true;
    default:
      return false;
  }
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
    case Kind::kInlineTree:
      return bench_tree().nodes();
    default:
      return 1;
  }
}

// The layers timed: Qwen3-Next's Gated DeltaNet, or Kimi Linear's Kimi Delta Attention (the
// same HV = 32 heads of K = V = 128, H = 32 key heads, conv_dim 12288).
ModelGeometry bench_geometry(RecurrenceKind rec) {
  return make_geometry(
      rec == RecurrenceKind::kKimiDeltaAttention ? "kimi-linear-48b-a3b" : "qwen3-next-80b-a3b", 1);
}

// "ring", or "kda.ring" for the KDA layers.
std::string step_name(RecurrenceKind rec, Kind k) {
  return (rec == RecurrenceKind::kKimiDeltaAttention ? "kda." : "") + std::string(kind_name(k));
}

PoolShape bench_shape(RecurrenceKind rec, SsmDtype dtype, int32_t rows, int32_t slots,
                      int32_t payload_tokens = kT) {
  PoolShape s;
  s.geometry = bench_geometry(rec);
  s.geometry.layers = kLayers;
  s.ssm_dtype = dtype;
  s.state_rows = rows;
  s.conv_cols = s.geometry.conv_state_cols();
  s.payload_slots = slots;
  s.payload_tokens = payload_tokens;
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

// FP32 peak of the current device, from its attributes (SM count, compute capability, clock).
const Fp32Peak& fp32_peak() {
  static const Fp32Peak peak = [] {
    int dev = 0, sms = 0, major = 0, minor = 0, khz = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev));
    return Fp32Peak{sms, fp32_lanes_per_sm(major, minor), khz * 1e3};
  }();
  return peak;
}

std::string device_name() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return prop.name;
}

// One benchmark case: a backend whose rows hold real states, and per rotation set the
// prepared launches of one step.
class StepCase {
 public:
  StepCase(Kind kind, RecurrenceKind rec, SsmDtype dtype, int32_t batch)
      : kind_(kind), batch_(batch) {
    const PoolShape one = bench_shape(rec, dtype, 1, 0);
    const int64_t set_bytes = int64_t{batch} * rows_per_request(kind) * kLayers * state_bytes(one);
    sets_ = int32_t(std::max<int64_t>(2, (kRotationBytes + set_bytes - 1) / set_bytes));
    const int32_t rows = batch * rows_per_request(kind) * sets_;
    const bool ring = ring_history(kind) > 0;
    backend_ = std::make_unique<CudaBackend>(
        bench_shape(rec, dtype, rows, 2 * batch * sets_, ring ? kRingSlots : kT), 7);
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
    const PoolShape& s = backend_->shape();
    const num::PayloadToken token = s.payload_token();
    const int64_t payload =
        (writes_payload(kind_) ? kT * token.bytes() : 0) +
        token.replay_read_bytes(tokens_replayed(kind_), s.geometry.conv_state_cols());
    return int64_t{batch_} * kLayers * (states_moved(kind_) * state_bytes(s) + payload);
  }
  double step_fma_ops() const {
    const int ops = tokens_computed(kind_) * kOpsComputed + tokens_replayed(kind_) * kOpsReplayed;
    return double(batch_) * kLayers * ops *
           double(backend_->shape().geometry.ssm_elements_per_layer());
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
  // slot that a step reads gets the inputs of payload verifies (a ring: its whole history).
  void fill_states() {
    std::vector<PrefillTask> prefills;
    for (int32_t s = 0; s < sets_; ++s) {
      for (int32_t r = 0; r < batch_; ++r) {
        PrefillTask p;
        p.tokens = {uint64_t(r), 0, 3};
        p.writes = {{3, row(s, r, 0)}};
        prefills.push_back(p);
      }
    }
    backend_->prefill(prefills);
    for (int32_t first = 0; first < std::max(kT, ring_history(kind_)); first += kT) {
      std::vector<VerifyTask> payloads;
      for (int32_t s = 0; s < sets_; ++s) {
        for (int32_t r = 0; r < batch_; ++r) {
          VerifyTask v;
          v.tokens = {uint64_t(r), 3 + first, kT};
          v.from = StateLoc::at(row(s, r, 0));
          v.payload_slot = slot(s, r, 0);
          v.payload_first_token = first;
          payloads.push_back(v);
        }
      }
      backend_->verify(VerifyMode::kPayload, payloads);
    }
    cuda_synchronize_checked();
  }

  // The ring's history of ring_history(kind_) tokens in slot(s, r, 0), accepted T at a time.
  PendingReplay ring_pending(int32_t s, int32_t r) const {
    const int32_t h = ring_history(kind_);
    PendingReplay p{slot(s, r, 0), h, kind_ == Kind::kRingFold ? row(s, r, 0) : kNoRow, 0, 0};
    for (int32_t end = kT; end < h; end += kT)
      p.round_after |= 1u << (end - 1);
    return p;
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
        case Kind::kInlineTree:
          v.tokens.count = bench_tree().nodes();
          v.parents = bench_tree().parents;
          for (int j = 0; j < v.tokens.count; ++j)
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
        case Kind::kRing:
        case Kind::kRingFold:
          mode = VerifyMode::kPayload;
          v.pending = ring_pending(s, r);
          v.payload_slot = slot(s, r, 0);
          v.payload_first_token = ring_history(kind_);
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
  double seconds = 0, bytes = 0, fma_ops = 0;
};
// By (recurrence, kind, dtype, batch): GDN's first, in Kind order, fp32 before bf16, batch
// ascending.
using SummaryKey = std::tuple<RecurrenceKind, Kind, SsmDtype, int32_t>;
std::map<SummaryKey, Summary>& summaries() {
  static std::map<SummaryKey, Summary> s;
  return s;
}

const char* dtype_name(SsmDtype dtype) {
  return dtype == SsmDtype::kF32 ? "fp32" : "bf16";
}

void BM_Step(benchmark::State& state, Kind kind, RecurrenceKind rec, SsmDtype dtype) {
  const int32_t batch = int32_t(state.range(0));
  StepCase step(kind, rec, dtype, batch);
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
  const Roof roof = step_roof(bytes, copy_bw, step.step_fma_ops(), fp32_peak());
  state.SetBytesProcessed(int64_t(bytes) * state.iterations());
  state.counters["step_us"] = benchmark::Counter(t * 1e6);
  state.counters["state_GBps"] = benchmark::Counter(bytes / t / 1e9);
  state.counters["pct_of_copy"] = benchmark::Counter(100.0 * bytes / t / copy_bw);
  state.counters["state_MiB"] = benchmark::Counter(bytes / 1048576.0, benchmark::Counter::kDefaults,
                                                   benchmark::Counter::kIs1024);
  state.counters["roof_us"] = benchmark::Counter(roof.seconds() * 1e6);
  state.counters["pct_of_roof"] = benchmark::Counter(100.0 * roof.seconds() / t);
  summaries()[{rec, kind, dtype, batch}] = {t, bytes, step.step_fma_ops()};
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

// The anchor file named by --anchors= or SPECSTATE_ANCHORS, read once; `note` says what happened.
struct Anchors {
  std::string path;
  std::optional<AnchorRun> run;  // set when the file was read and held at least one case
  std::string note;
};

Anchors load_anchors(const std::string& path) {
  Anchors a;
  a.path = path;
  if (path.empty()) {
    a.note = "anchors: none (neither SPECSTATE_ANCHORS nor --anchors given); no anchor columns";
    return a;
  }
  std::ifstream in(path);
  if (!in) {
    a.note = "anchors: cannot read " + path + "; no anchor columns";
    return a;
  }
  AnchorRun run = parse_anchor_stream(in);
  if (run.cases.empty()) {
    a.note =
        "anchors: " + path + " holds no anchor case (did anchor_bench.py fail?); no anchor columns";
    for (const auto& p : run.problems)
      a.note += "\n  " + p;
    return a;
  }
  a.run = std::move(run);
  return a;
}

// The row's goal (docs/performance.md, "Where the goals stand") and whether this run meets it
// ("met" / "UNMET"), or "" when the row has none. A goal against an anchor also gives the time
// it allows: max_ratio x anchor time.
std::string goal_text(const char* kind, int32_t batch, double pct_copy, const AnchorRef* ref,
                      double step_us, double anchor_us) {
  char buf[80];
  const double pct_goal = pct_copy_goal(kind, batch);
  if (pct_goal > 0) {
    std::snprintf(buf, sizeof buf, ">=%.0f%%copy %s", pct_goal,
                  pct_copy >= pct_goal ? "met" : "UNMET");
    return buf;
  }
  if (ref != nullptr && ref->max_ratio > 0 && batch == ref->goal_batch && anchor_us > 0) {
    const double allowed_us = ref->max_ratio * anchor_us;
    std::snprintf(buf, sizeof buf, "<=%.2fx = %.1fus %s", ref->max_ratio, allowed_us,
                  step_us <= allowed_us ? "met" : "UNMET");
    return buf;
  }
  return "";
}

// The summary table, against this run's copy bandwidth (bytes / s), FP32 peak and device name.
void print_summary(const Anchors& anchors, double copy_bw, const Fp32Peak& peak,
                   const std::string& gpu) {
  std::printf("\ncopy ceiling: %.0f GB/s (read + write), %s\n", copy_bw / 1e9, gpu.c_str());
  std::printf(
      "FP32 peak: %d SMs x %d lanes x %.0f MHz = %.1f T fma-class ops/s; roof = max(bytes / "
      "copy ceiling, (%d x computed + %d x replayed tokens) x state elements / peak)\n",
      peak.sms, peak.lanes_per_sm, peak.clock_hz / 1e6, peak.ops_per_second() / 1e12, kOpsComputed,
      kOpsReplayed);
  const AnchorRun* run = anchors.run ? &*anchors.run : nullptr;
  if (run == nullptr) {
    std::printf("%s\n", anchors.note.c_str());
  } else {
    std::printf(
        "anchors: %s (%s; copy ceiling of the anchor process %.0f GB/s before, %.0f GB/s "
        "after); x_anchor = time / anchor time; anchor %%copy against the anchor's ceiling\n",
        anchors.path.c_str(), run->gpu.c_str(), run->copy_GBps, run->copy_GBps_end);
    if (!run->gpu.empty() && run->gpu != gpu)
      std::printf("WARNING: anchors ran on \"%s\", bench_step on \"%s\"\n", run->gpu.c_str(),
                  gpu.c_str());
  }
  std::printf("%-15s %-5s %5s %9s %6s %7s %9s %5s %6s", "step", "dtype", "batch", "time_us", "GB/s",
              "%copy", "roof_us", "bound", "%roof");
  if (run != nullptr)
    std::printf("  %-12s %9s %7s %8s", "anchor", "anchor_us", "a%copy", "x_anchor");
  std::printf("  %s\n", "goal");
  std::vector<std::string> anchor_errors;
  for (const auto& [key, s] : summaries()) {
    const auto& [rec, kind_enum, dtype_enum, batch] = key;
    const std::string name = step_name(rec, kind_enum);
    const char* kind = name.c_str();  // KDA steps have neither anchors nor goals
    const char* dtype = dtype_name(dtype_enum);
    const double pct_copy = 100.0 * s.bytes / s.seconds / copy_bw;
    const Roof roof = step_roof(s.bytes, copy_bw, s.fma_ops, peak);
    char own[160];
    std::snprintf(own, sizeof own, "%-15s %-5s %5d %9.1f %6.0f %6.1f%% %9.1f %5s %5.1f%%", kind,
                  dtype, batch, s.seconds * 1e6, s.bytes / s.seconds / 1e9, pct_copy,
                  roof.seconds() * 1e6, roof.bound(), 100.0 * roof.seconds() / s.seconds);
    const std::vector<AnchorRef> refs =
        run != nullptr ? anchors_of(kind) : std::vector<AnchorRef>{};
    if (refs.empty()) {
      std::printf("%s", own);
      if (run != nullptr) std::printf("  %-12s %9s %7s %8s", "-", "-", "-", "-");
      std::printf("  %s\n", goal_text(kind, batch, pct_copy, nullptr, 0, 0).c_str());
      continue;
    }
    for (const AnchorRef& ref : refs) {  // one line per anchor, each complete
      const AnchorCase* c = run->find(ref.variant, dtype, batch);
      std::printf("%s  %-12s ", own, ref.variant);
      double anchor_us = 0;
      if (c == nullptr) {
        std::printf("%9s %7s %8s", "missing", "-", "-");
      } else if (!c->error.empty()) {
        std::printf("%9s %7s %8s", "error", "-", "-");
        anchor_errors.push_back(anchor_key(ref.variant, dtype, batch) + ": " + c->error);
      } else {
        anchor_us = c->us;
        std::printf("%9.1f %6.1f%% %8.2f", c->us, c->pct_copy, s.seconds * 1e6 / c->us);
      }
      std::printf("  %s\n",
                  goal_text(kind, batch, pct_copy, &ref, s.seconds * 1e6, anchor_us).c_str());
    }
  }
  for (const auto& e : anchor_errors)
    std::printf("anchor error %s\n", e.c_str());
  if (run != nullptr)
    for (const auto& p : run->problems)
      std::printf("anchor file: %s\n", p.c_str());
}

void register_all() {
  benchmark::RegisterBenchmark("copy_d2d_1GiB", BM_Copy)->UseManualTime()->Iterations(20);
  using R = RecurrenceKind;
  const std::vector<std::pair<R, Kind>> steps = {
      {R::kGatedDeltaNet, Kind::kInline},
      {R::kGatedDeltaNet, Kind::kScatter},
      {R::kGatedDeltaNet, Kind::kScatterVerify},
      {R::kGatedDeltaNet, Kind::kCommitCopy},
      {R::kGatedDeltaNet, Kind::kReplay},
      {R::kGatedDeltaNet, Kind::kPayloadVerify},
      {R::kGatedDeltaNet, Kind::kReplayOnly},
      {R::kGatedDeltaNet, Kind::kDeferred},
      {R::kGatedDeltaNet, Kind::kRing},
      {R::kGatedDeltaNet, Kind::kRingFold},
      {R::kGatedDeltaNet, Kind::kInlineTree},
      // KDA beside GDN: the strategies' main steps on Kimi Linear's layers.
      {R::kKimiDeltaAttention, Kind::kInline},
      {R::kKimiDeltaAttention, Kind::kReplay},
      {R::kKimiDeltaAttention, Kind::kDeferred},
      {R::kKimiDeltaAttention, Kind::kRing},
      {R::kKimiDeltaAttention, Kind::kRingFold}};
  for (const auto& [rec, kind] : steps) {
    for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
      const std::string name = step_name(rec, kind) + "/" + dtype_name(dtype);
      benchmark::RegisterBenchmark(name.c_str(), BM_Step, kind, rec, dtype)
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

// --anchors=PATH (taken out of argv before Google Benchmark sees it) or SPECSTATE_ANCHORS=PATH.
std::string anchors_path(int& argc, char** argv) {
  std::string path;
  if (const char* env = std::getenv("SPECSTATE_ANCHORS")) path = env;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--anchors=", 10) == 0)
      path = argv[i] + 10;
    else
      argv[out++] = argv[i];
  }
  argc = out;
  argv[argc] = nullptr;
  return path;
}

int main(int argc, char** argv) {
  if (specstate::cuda_device_count() == 0) {
    std::fprintf(stderr, "bench_step: no CUDA device\n");
    return 1;
  }
  const specstate::bench::Anchors anchors =
      specstate::bench::load_anchors(anchors_path(argc, argv));
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("anchors", anchors.run ? anchors.path : anchors.note);
  specstate::bench::register_all();
  benchmark::RunSpecifiedBenchmarks();
  specstate::bench::print_summary(anchors, specstate::bench::measure_copy_bandwidth(),
                                  specstate::bench::fp32_peak(), specstate::bench::device_name());
  benchmark::Shutdown();
  return 0;
}
