#include "backends/cpu/cpu_backend.h"

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <utility>

#include <sys/mman.h>

#include "backends/cpu/digest_lanes.h"
#include "backends/cpu/packet_lanes.h"
#include "backends/cpu/parallel.h"
#include "backends/sequence_job.h"
#include "core/draft_tree.h"
#include "core/errors.h"
#include "core/guard.h"
#include "core/numerics/digest.h"
#include "core/numerics/gdn_step.h"
#include "core/numerics/inputs.h"

namespace specstate {
namespace {

using num::bf16_bits;
using F32Array = Eigen::Array<float, Eigen::Dynamic, 1>;

// Copies of a few words (a conv window's W-1 columns, 8 lanes): a loop the compiler keeps
// inline, where std::copy becomes one memmove call per channel.
template <class T>
inline void copy_short(const T* src, int n, T* dst) {
  for (int i = 0; i < n; ++i)
    dst[i] = src[i];
}

// Zero-initialised, page-aligned storage from an anonymous mapping: its pages read as zero and
// take physical memory only when first written, so a pool far larger than the machine can be
// allocated (bench_footprint measures real model configurations this way) and costs only the
// rows that are used. Page alignment makes every head of every row 32-byte aligned, which the
// streaming stores of store_head need. Arrays of 2 MiB or more ask for transparent huge pages:
// the six-lane replay of docs/performance.md streams 1.5 GB of pool rows, and with 4 KiB pages
// it spent about 4 % of its time in page faults and more in TLB misses (7 % faster with them).
constexpr size_t kHugePage = size_t{2} << 20;

template <class T>
class ZeroedArray {
 public:
  explicit ZeroedArray(int64_t size) : size_(size), bytes_(size_t(size) * sizeof(T)) {
    if (size <= 0) return;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    if (bytes_ >= kHugePage) madvise(p, bytes_, MADV_HUGEPAGE);
    data_ = static_cast<T*>(p);
  }
  ~ZeroedArray() {
    if (data_) munmap(data_, bytes_);
  }
  ZeroedArray(ZeroedArray&& o) noexcept
      : size_(o.size_), bytes_(o.bytes_), data_(std::exchange(o.data_, nullptr)) {}
  ZeroedArray& operator=(ZeroedArray&&) = delete;
  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  T& operator[](int64_t i) { return data_[i]; }
  const T& operator[](int64_t i) const { return data_[i]; }

 private:
  int64_t size_;
  size_t bytes_;
  T* data_ = nullptr;
};

// Parameters of one layer, decoded from bf16 once.
struct LayerParams {
  F32Array conv_taps;  // [conv_dim, W]
  F32Array a_log;      // [HV]
  F32Array dt_bias;    // [HV, A]: A decay values per value head (core/recurrence.h)
};

using ColumnGroup = cpu::PacketLanes;  // 8 V columns per head_column call, on Eigen packets
constexpr int kCpuLanes = cpu::PacketLanes::kLanes;
constexpr int kMaxConvWidth = 8;
// recur_head's copy of a head is V/8 column groups of K rows, each group followed by this many
// unused ColumnGroups (64 bytes): unpadded, K = 128 puts the groups 4 KiB apart, so the 16 groups
// of one pool row fall on one L1 set and its 8 ways, and gathering or scattering a row evicts
// what the previous row brought in (load_head ran at a third of memcpy's speed).
constexpr int kGroupPad = 2;
// New tokens a prefill runs at a time (prefill_part): its working buffers are O(part), whatever
// the prefill's length (a trace allows 2^24 tokens per extend).
constexpr int32_t kPartTokens = 512;

class CpuBackend final : public StateBackend {
 public:
  CpuBackend(const PoolShape& shape, uint64_t seed);

  std::string name() const override { return "cpu"; }
  AllocationReport allocations() const override;

 private:
  void do_prefill(std::span<const PrefillTask> tasks) override;
  void do_verify(VerifyMode mode, std::span<const VerifyTask> tasks) override;
  void do_replay(std::span<const ReplayTask> tasks) override;
  void do_copy_rows(std::span<const RowCopy> copies) override;
  void do_gather_payload(std::span<const PayloadGather> gathers) override;
  void do_write_state(int32_t row, const RowBytes& state) override;
  void do_fill_row(int32_t row, uint8_t byte) override;
  void do_set_accepted(std::span<const AcceptedCount> counts) override {
    for (const AcceptedCount& c : counts)
      accepted_[size_t(c.req_row)] = c.count;
  }
  int32_t do_accepted(int32_t req_row) const override { return accepted_[size_t(req_row)]; }
  bool runs(const Guard& g) const { return guard_passes(accepted_.data(), g.req_row, g.count); }
  RowBytes do_read(const StateLoc& loc, int32_t first_col, int32_t cols) const override;
  uint64_t do_digest(const StateLoc& loc, int32_t first_col, int32_t cols) const override;
  uint64_t do_digest_replayed(const ReplayTask& task) override;
  VerifyOutputs do_read_outputs() const override { return outputs_; }
  std::vector<uint8_t> do_read_payload(int32_t slot) const override;

  struct LayerWork;
  struct Carry;

  // Every (job, layer) and, inside, every value head is independent work: the tasks of one call
  // touch disjoint rows and slots (StateBackend checks it), a layer only its own tensors, a head
  // only its slice. So the work is spread over TBB's threads with no reduction across units, and
  // the bytes are the same for any thread count.
  // Runs the active jobs; job i's per-token outputs go to outputs + i x (its share), or nowhere.
  void run(std::span<const SequenceJob> jobs, bf16_bits* outputs = nullptr);
  void run_layer(const SequenceJob& job, int layer, bf16_bits* outputs);
  // One job whole, or one part of a long prefill: `carry` (null: a whole job) holds the state
  // between parts, taken as the start once filled and left holding the state after the part.
  void run_part(const SequenceJob& job, int layer, bf16_bits* outputs, Carry* carry);
  // Runs f(layer) for every layer, in parallel.
  template <class F>
  void for_each_layer(F&& f) const {
    cpu::parallel_for(0, geo().layers, [&](int l) { f(l); });
  }
  uint64_t digest_layer(const StateLoc& loc, int32_t first_col, int32_t cols, int layer) const;
  // Where a layer's terms start in the digest's block order (digest_of): every layer's conv words
  // (`cols` columns a channel, 4 words a block), then every layer's SSM bytes (8 a block).
  uint64_t conv_first_block(int layer, int32_t cols) const {
    return uint64_t(layer) * uint64_t(geo().conv_dim()) * uint64_t(cols) / 4;
  }
  uint64_t ssm_first_block(int layer, int32_t cols) const {
    return conv_first_block(geo().layers, cols) +
           uint64_t(layer) * uint64_t(shape().ssm_row_bytes()) / 8;
  }
  void load_window(const SequenceJob& job, int layer, const Carry* carry, LayerWork& w) const;
  void stage_inputs(const SequenceJob& job, int layer, LayerWork& w);
  void store_windows(const SequenceJob& job, int layer, const LayerWork& w);
  void conv(int layer, LayerWork& w) const;
  void norms_and_gates(const SequenceJob& job, int layer, LayerWork& w);
  void recur_head(const SequenceJob& job, int layer, int hv, const LayerWork& w, bf16_bits* outputs,
                  Carry* carry);
  void replay_tokens(std::span<const uint8_t* const> tokens, int h, int hv, ColumnGroup* s) const;
  void load_head(int layer, int32_t row, int hv, ColumnGroup* s) const;
  void store_head(int layer, int32_t row, int hv, const ColumnGroup* s);
  // s in the pool's [K, V] layout and dtype at dst (bf16: round to nearest even); `stream`:
  // around the cache.
  void write_head(float* dst, const ColumnGroup* s, bool stream) const;
  void write_head(bf16_bits* dst, const ColumnGroup* s) const;

  // While digest_replayed runs: its destination row, whose heads and window are digested where
  // store_head and store_windows would write them, and left as they were. The terms add up in
  // `sum` (the digest is a sum mod 2^64, in any order); `heads` and `windows` count them.
  struct DigestSink {
    int32_t row = kNoRow;
    std::atomic<uint64_t> sum{0};
    std::atomic<int64_t> heads{0}, windows{0};
  };
  bool sinks(int32_t row) const { return sink_ != nullptr && row == sink_->row; }
  void sink_head(int layer, int hv, const ColumnGroup* s) const;

  // ColumnGroups from one column group of recur_head's head copy to the next (kGroupPad).
  int group_stride() const { return geo().head_k_dim + kGroupPad; }
  // Row-major element offsets.
  int64_t conv_index(int32_t row, int32_t channel, int32_t col) const {
    return (int64_t{row} * geo().conv_dim() + channel) * shape().conv_cols + col;
  }
  int64_t ssm_index(int32_t row) const { return int64_t{row} * geo().ssm_elements_per_layer(); }
  // Token j of a span of `slot` that starts at ring position `first` (payload_token.h's layout).
  uint8_t* payload_at(int layer, int32_t slot, int32_t first, int32_t j) {
    const int32_t token = (first + j) % shape().payload_tokens;
    return payload_[layer].data() +
           (int64_t{slot} * shape().payload_tokens + token) * token_.bytes();
  }
  const uint8_t* payload_at(int layer, int32_t slot, int32_t first, int32_t j) const {
    return const_cast<CpuBackend*>(this)->payload_at(layer, slot, first, j);
  }
  // Sequence token j (< job.stored_tokens()) in the payload slot it is replayed from.
  const uint8_t* stored_token(const SequenceJob& job, int layer, int32_t j) const {
    const int32_t pending = job.pending.count;
    return j < pending ? payload_at(layer, job.pending.payload_slot, job.pending.first_token, j)
                       : payload_at(layer, job.in_slot, job.in_first, j - pending);
  }
  // Where new token jn's payload goes in payload mode.
  uint8_t* payload_out(const SequenceJob& job, int layer, int32_t jn) {
    return payload_at(layer, job.payload_out_slot, job.payload_out_first, jn);
  }
  const ModelGeometry& geo() const { return shape().geometry; }
  bool ssm_f32() const { return shape().ssm_dtype == SsmDtype::kF32; }

  // The state at `src` -> `dst_row` (offset 0), all layers; dst_row must not be a row of src.
  void copy_state(const StateLoc& src, int32_t dst_row);
  uint8_t* ssm_bytes_at(int layer, int32_t row) {
    return ssm_f32() ? reinterpret_cast<uint8_t*>(ssm_f32_[layer].data() + ssm_index(row))
                     : reinterpret_cast<uint8_t*>(ssm_bf16_[layer].data() + ssm_index(row));
  }
  const uint8_t* ssm_bytes_at(int layer, int32_t row) const {
    return const_cast<CpuBackend*>(this)->ssm_bytes_at(layer, row);
  }

  std::vector<LayerParams> params_;
  std::vector<int32_t> accepted_ = std::vector<int32_t>(size_t(shape().request_rows), 0);
  std::vector<ZeroedArray<bf16_bits>> conv_;      // per layer [state_rows, conv_dim, conv_cols]
  std::vector<ZeroedArray<float>> ssm_f32_;       // per layer [state_rows, HV, K, V] (f32 pools)
  std::vector<ZeroedArray<bf16_bits>> ssm_bf16_;  // per layer [state_rows, HV, K, V] (bf16 pools)
  std::vector<ZeroedArray<uint8_t>> payload_;     // per layer [slots, tokens] of token_ bytes
  num::PayloadToken token_ = shape().payload_token();
  VerifyOutputs outputs_;
  DigestSink* sink_ = nullptr;
};

CpuBackend::CpuBackend(const PoolShape& shape, uint64_t seed) : StateBackend(shape, seed) {
  const ModelGeometry& g = geo();
  check_cpu_geometry(g);
  const int64_t rows = shape.state_rows;
  const num::RankIndex model = g.rank_index();
  for (int l = 0; l < g.layers; ++l) {
    LayerParams p;
    p.conv_taps.resize(int64_t{g.conv_dim()} * g.conv_width);
    for (int c = 0; c < g.conv_dim(); ++c) {
      for (int t = 0; t < g.conv_width; ++t) {
        p.conv_taps[int64_t{c} * g.conv_width + t] =
            num::bf16_to_float(num::gen_conv_weight(seed, g.layer_id(l), model.conv_channel(c), t));
      }
    }
    const int A = g.decay_values_per_head();
    p.a_log.resize(g.num_v_heads);
    p.dt_bias.resize(int64_t{g.num_v_heads} * A);
    for (int h = 0; h < g.num_v_heads; ++h)
      p.a_log[h] = num::bf16_to_float(num::gen_a_log(seed, g.layer_id(l), model.value_head(h)));
    for (int e = 0; e < g.num_v_heads * A; ++e) {
      p.dt_bias[e] =
          num::bf16_to_float(num::gen_dt_bias(seed, g.layer_id(l), model.head_entry(e, A)));
    }
    params_.push_back(std::move(p));
    conv_.emplace_back(rows * g.conv_dim() * shape.conv_cols);
    if (ssm_f32()) {
      ssm_f32_.emplace_back(rows * g.ssm_elements_per_layer());
    } else {
      ssm_bf16_.emplace_back(rows * g.ssm_elements_per_layer());
    }
    payload_.emplace_back(int64_t{shape.payload_slots} * shape.payload_slot_bytes());
  }
}

AllocationReport CpuBackend::allocations() const {
  AllocationReport r;
  for (const auto& a : conv_)
    r.conv_bytes += a.size() * int64_t(sizeof(bf16_bits));
  for (const auto& a : ssm_f32_)
    r.ssm_bytes += a.size() * int64_t(sizeof(float));
  for (const auto& a : ssm_bf16_)
    r.ssm_bytes += a.size() * int64_t(sizeof(bf16_bits));
  for (const auto& a : payload_)
    r.payload_bytes += a.size();
  return r;
}

void CpuBackend::run(std::span<const SequenceJob> jobs, bf16_bits* outputs) {
  const int layers = geo().layers;
  const int64_t per_job = int64_t{outputs_.tokens} * layers * geo().num_v_heads * geo().head_v_dim;
  std::vector<size_t> active;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].active && runs(jobs[i].guard)) active.push_back(i);
  }
  cpu::parallel_for(int64_t{0}, int64_t(active.size()) * layers, [&](int64_t unit) {
    const size_t i = active[size_t(unit / layers)];
    run_layer(jobs[i], int(unit % layers), outputs ? outputs + int64_t(i) * per_job : nullptr);
  });
}

// Working buffers of one layer of one sequence, filled stage by stage.
struct CpuBackend::LayerWork {
  int pending = 0, total = 0, hist_cols = 0;
  int stored = 0;  // leading tokens replayed from stored values: no conv, norms, gates
  // Column by column, every channel: the W-1 source window columns, then every token's raw
  // input (a token's inputs are one contiguous column, as they are generated and stored). Tap t
  // of sequence token j's conv reads column taps[j*W + t] (j + t along a chain,
  // core/draft_tree.h in a tree); the window after token j is its taps 1 .. W-1.
  std::vector<bf16_bits> hist;   // [hist_cols, conv_dim] bf16
  std::vector<int32_t> taps;     // [tokens, W]
  std::vector<bf16_bits> ab;     // [tokens, HV, A + 1] bf16: gate inputs a (A of them), b
  std::vector<float> conv_out;   // [tokens, conv_dim] fp32 (bf16 values)
  std::vector<float> qk_hat;     // [tokens, H, 2, K] fp32: q_hat | k_hat
  std::vector<float> alpha;      // [tokens, HV, A]: the decay of each state row (A = 1: all)
  std::vector<float> beta;       // [tokens, HV]
  std::vector<RecurStep> steps;  // the recurrence's order (sequence_job.h)
  bool restarts = false;
};

// A long prefill's state between its parts: the conv window and every head's fp32 state, as
// the recurrence holds it (a prefill never rounds between its tokens).
struct CpuBackend::Carry {
  bool filled = false;
  std::vector<bf16_bits> window;                // [W-1, conv_dim] bf16: hist's last columns
  std::vector<std::vector<ColumnGroup>> heads;  // [HV][V/8][K + kGroupPad] fp32
};

void CpuBackend::run_layer(const SequenceJob& job, int layer, bf16_bits* outputs) {
  if (job.tokens() <= kPartTokens) return run_part(job, layer, outputs, nullptr);
  Carry carry;
  carry.heads.resize(size_t(geo().num_v_heads));
  for (int32_t first = 0; first < job.count; first += kPartTokens) {
    run_part(prefill_part(job, first, std::min(kPartTokens, job.count - first)), layer, nullptr,
             &carry);
    carry.filled = true;
  }
}

// The step for one layer of one sequence, in the stages the CUDA kernels run: the prep kernel's
// (inputs, conv windows, conv, norms and gates), then the recurrence kernel's per value head.
void CpuBackend::run_part(const SequenceJob& job, int layer, bf16_bits* outputs, Carry* carry) {
  const ModelGeometry& g = geo();
  LayerWork w;
  w.pending = job.pending.count;
  w.total = job.tokens();
  w.stored = job.stored_tokens();
  w.hist_cols = g.conv_state_cols() + w.total;
  w.taps.resize(size_t(w.total) * g.conv_width);
  for (int j = 0; j < w.total; ++j) {
    int col = g.conv_state_cols() + j;
    for (int t = g.conv_width - 1; t >= 0; --t) {
      w.taps[size_t(j) * g.conv_width + t] = col;
      col = tree::previous_column(job.parents_or_null(), w.pending, g.conv_state_cols(), col);
    }
  }
  w.steps = recurrence_steps(job, ssm_f32());
  w.restarts = has_restart(w.steps);
  load_window(job, layer, carry, w);
  stage_inputs(job, layer, w);
  store_windows(job, layer, w);
  conv(layer, w);
  norms_and_gates(job, layer, w);
  cpu::parallel_for(0, g.num_v_heads,
                    [&](int hv) { recur_head(job, layer, hv, w, outputs, carry); });
  if (carry)  // a prefill's window after its last token: the last W-1 history columns
    carry->window.assign(w.hist.begin() + int64_t{w.total} * g.conv_dim(), w.hist.end());
}

void CpuBackend::load_window(const SequenceJob& job, int layer, const Carry* carry,
                             LayerWork& w) const {
  const int C = geo().conv_dim(), wc = geo().conv_state_cols();
  w.hist.assign(int64_t{C} * w.hist_cols, 0);
  if (carry && carry->filled) {
    std::copy(carry->window.begin(), carry->window.end(), w.hist.begin());
    return;
  }
  if (job.from_zero) return;
  const bf16_bits* src =
      conv_[layer].data() + conv_index(job.from.conv_row, 0, job.from.conv_offset);
  for (int c = 0; c < C; ++c)
    for (int t = 0; t < wc; ++t)
      w.hist[int64_t{t} * C + c] = src[int64_t{c} * shape().conv_cols + t];
}

// Every token's conv input -> hist (a stored token's only where a window or tap reads it: the
// last W-1 of them), the generated tokens' gate inputs -> ab; payload mode keeps x.
void CpuBackend::stage_inputs(const SequenceJob& job, int layer, LayerWork& w) {
  const ModelGeometry& g = geo();
  const int C = g.conv_dim(), HV = g.num_v_heads, wc = g.conv_state_cols();
  const int A = g.decay_values_per_head();
  const num::RankIndex model = g.rank_index();
  w.ab.resize(size_t(w.total) * HV * (A + 1));
  for (int j = std::max(0, w.stored - wc); j < w.total; ++j) {
    const int jn = j - w.pending;  // index among the new tokens
    bf16_bits* x = w.hist.data() + int64_t{wc + j} * C;
    if (j < w.stored) {
      const bf16_bits* src = num::PayloadToken::x(stored_token(job, layer, j));
      std::copy(src, src + C, x);
    } else {
      const TokenSpan& span = *job.generated;
      const num::TokenCoord coord{
          seed(), span.request_id,
          tree::node_position(job.parents_or_null(), span.first_position, jn),
          uint32_t(g.layer_id(layer))};
      const uint64_t prefix = num::conv_input_prefix(coord);
      for (int c = 0; c < C; ++c)
        x[c] = num::conv_input_at(prefix, model.conv_channel(c));
      for (int h = 0; h < HV; ++h) {
        bf16_bits* ab = w.ab.data() + (size_t(j) * HV + h) * (A + 1);
        for (int i = 0; i < A; ++i)
          ab[i] = num::gen_gate_a(coord, model.head_entry(uint32_t(h * A + i), A));
        ab[A] = num::gen_gate_b(coord, model.value_head(h));
      }
      if (job.payload_out_slot != kNoRow)
        std::copy(x, x + C, num::PayloadToken::x(payload_out(job, layer, jn)));
    }
  }
}

// Conv windows of every full-state write, token by token (a later token's write wins), then, in
// window mode, the source conv row rewritten as [w1 .. w_{W-2}, x_0 .. x_{n-1}] (the window after
// new token j starts at column j).
void CpuBackend::store_windows(const SequenceJob& job, int layer, const LayerWork& w) {
  const int C = geo().conv_dim(), wc = geo().conv_state_cols();
  auto store = [&](int32_t row, int j) {  // the window after sequence token j: its taps 1..W-1
    const int32_t* taps = w.taps.data() + size_t(j) * geo().conv_width + 1;
    auto gather = [&](bf16_bits* dst, int64_t stride) {  // channel c at dst + c * stride
      for (int t = 0; t < wc; ++t) {
        const bf16_bits* src = w.hist.data() + int64_t{taps[t]} * C;
        for (int c = 0; c < C; ++c)
          dst[c * stride + t] = src[c];
      }
    };
    if (!sinks(row)) return gather(conv_[layer].data() + conv_index(row, 0, 0), shape().conv_cols);
    thread_local std::vector<bf16_bits> window;  // [conv_dim, W-1]: digest_layer's words
    window.resize(size_t(C) * wc);
    gather(window.data(), wc);
    sink_->sum += cpu::digest_blocks(reinterpret_cast<const uint8_t*>(window.data()),
                                     int64_t{C} * wc / 4, conv_first_block(layer, wc));
    ++sink_->windows;
  };
  size_t next = 0;  // job.writes ascend: one pass over them, however many there are
  for (int j = 0; j < w.total; ++j) {
    if (j == w.pending - 1 && job.pending.commit_row != kNoRow) store(job.pending.commit_row, j);
    for (; next < job.writes.size() && w.pending + job.writes[next].after_tokens - 1 <= j; ++next)
      store(job.writes[next].row, j);
  }
  if (job.window) {
    SPECSTATE_ASSERT(job.parents.empty(), "window mode runs chains only");
    const int first = w.pending + 1, cols = wc - 1 + job.count;
    bf16_bits* dst = conv_[layer].data() + conv_index(job.from.conv_row, 0, 0);
    for (int t = 0; t < cols; ++t) {
      const bf16_bits* src = w.hist.data() + int64_t{first + t} * C;
      for (int c = 0; c < C; ++c)
        dst[int64_t{c} * shape().conv_cols + t] = src[c];
    }
  }
}

// conv_channel for every channel and token. Where Eigen vectorises, a packet of channels at a
// time: the same fma chain over the taps per lane, silu_packet (the scalar SiLU's bits), and the
// bf16 rounding.
void CpuBackend::conv(int layer, LayerWork& w) const {
  const int C = geo().conv_dim(), W = geo().conv_width;
  const float* taps = params_[layer].conv_taps.data();
  w.conv_out.resize(size_t(w.total) * C);
#if defined(SPECSTATE_PACKET_SILU)
  namespace ei = Eigen::internal;
  using cpu::packet::F;
  constexpr int P = cpu::packet::kSize;  // conv_dim is a multiple of 8 (check_cpu_geometry)
  thread_local std::vector<float> hist;  // w.hist in fp32 (exact): a packet of a column is a load
  hist.resize(w.hist.size());
  std::transform(w.hist.begin(), w.hist.end(), hist.begin(),
                 [](bf16_bits b) { return num::bf16_to_float(b); });
  for (int c = 0; c < C; c += P) {
    F tap[kMaxConvWidth];
    for (int t = 0; t < W; ++t) {
      float v[P];
      for (int l = 0; l < P; ++l)
        v[l] = taps[int64_t{c + l} * W + t];
      tap[t] = ei::ploadu<F>(v);
    }
    for (int j = w.stored; j < w.total; ++j) {
      F acc = ei::pzero(tap[0]);
      const int32_t* cols = w.taps.data() + size_t(j) * W;
      for (int t = 0; t < W; ++t)
        acc = cpu::detail::fma_packet(tap[t], ei::ploadu<F>(&hist[int64_t{cols[t]} * C + c]), acc);
      ei::pstoreu(&w.conv_out[size_t(j) * C + c], cpu::round_to_bf16_packet(cpu::silu_packet(acc)));
    }
  }
#else
  std::vector<float> in(W);
  for (int c = 0; c < C; ++c) {
    for (int j = w.stored; j < w.total; ++j) {
      for (int t = 0; t < W; ++t)
        in[t] = num::bf16_to_float(w.hist[int64_t{w.taps[size_t(j) * W + t]} * C + c]);
      w.conv_out[size_t(j) * C + c] = num::conv_channel(in.data(), taps + int64_t{c} * W, W);
    }
  }
#endif
}

// q_hat, k_hat and the gates of every token the job computes; payload mode keeps k_hat and alpha
// (recur_head adds delta).
void CpuBackend::norms_and_gates(const SequenceJob& job, int layer, LayerWork& w) {
  const ModelGeometry& g = geo();
  const int C = g.conv_dim(), H = g.num_k_heads, HV = g.num_v_heads, K = g.head_k_dim;
  const int A = g.decay_values_per_head();
  const LayerParams& p = params_[layer];
  const float scale = g.query_scale();
  w.qk_hat.resize(size_t(w.total) * H * 2 * K);
  w.alpha.resize(size_t(w.total) * HV * A);
  w.beta.resize(size_t(w.total) * HV);
  for (int j = w.stored; j < w.total; ++j) {
    const float* out = w.conv_out.data() + size_t(j) * C;
    for (int h = 0; h < H; ++h) {
      const float* q = out + int64_t{h} * K;
      const float* k = out + g.key_dim() + int64_t{h} * K;
      const float dq = num::l2_norm_denominator(q, K);
      const float dk = num::l2_norm_denominator(k, K);
      float* dst = w.qk_hat.data() + (size_t(j) * H + h) * 2 * K;
      for (int i = 0; i < K; ++i) {
        dst[i] = num::normalize_query(q[i], dq, scale);
        dst[K + i] = num::normalize_key(k[i], dk);
      }
    }
    for (int hv = 0; hv < HV; ++hv) {
      const bf16_bits* ab = w.ab.data() + (size_t(j) * HV + hv) * (A + 1);
      float* alpha = w.alpha.data() + (size_t(j) * HV + hv) * A;
      for (int i = 0; i < A; ++i) {
        alpha[i] = num::gated_decay(num::bf16_to_float(ab[i]), p.a_log[hv],
                                    p.dt_bias[int64_t{hv} * A + i]);
      }
      w.beta[size_t(j) * HV + hv] = num::sigmoid_f32(num::bf16_to_float(ab[A]));
    }
    if (job.payload_out_slot != kNoRow) {
      uint8_t* token = payload_out(job, layer, j - w.pending);
      for (int hv = 0; hv < HV; ++hv) {
        const float* alpha = w.alpha.data() + (size_t(j) * HV + hv) * A;
        std::copy(alpha, alpha + A, token_.decay(token, hv));
      }
      for (int h = 0; h < H; ++h) {
        const float* k_hat = w.qk_hat.data() + (size_t(j) * H + h) * 2 * K + K;
        std::copy(k_hat, k_hat + K, token_.k_hat(token, h));
      }
    }
  }
}

// The recurrence of value head hv over the job's steps (recurrence_steps). The head's state stays
// in a local fp32 buffer from token to token, column group by column group ([V/8][K + kGroupPad] of
// ColumnGroup: group g is columns 8g..8g+7, its row i one ColumnGroup), so each head_column call
// walks its K rows contiguously; the pool's [K, V] rows are gathered into this layout once per job
// and scattered back for each state the job asks for, whole, after its token.
void CpuBackend::recur_head(const SequenceJob& job, int layer, int hv, const LayerWork& w,
                            bf16_bits* outputs, Carry* carry) {
  using L = ColumnGroup;
  const ModelGeometry& g = geo();
  const int K = g.head_k_dim, V = g.head_v_dim, H = g.num_k_heads, HV = g.num_v_heads;
  const int C = g.conv_dim(), h = hv / g.v_heads_per_k_head(), groups = V / kCpuLanes;
  const int A = g.decay_values_per_head();
  const int gs = group_stride();
  // This thread's head copy, [V/8][K + kGroupPad] fp32, kept from call to call: recur_head runs
  // no parallel work, so no other call on this thread can use it meanwhile, and a head no longer
  // costs a zeroed allocation that load_head then overwrites.
  thread_local std::vector<L> s;
  s.resize(size_t(groups) * gs);
  if (carry && carry->filled) {
    s.swap(carry->heads[size_t(hv)]);
  } else if (!job.from_zero) {
    load_head(layer, job.from.ssm_row, hv, s.data());
  } else {
    std::fill(s.begin(), s.end(), L{});
  }
  // Stored tokens are queued and replayed together when s is next used (a computed token, a
  // rounding, a store, a restart, the end): one pass over the head for the run, not one per token.
  std::vector<const uint8_t*> queued;
  queued.reserve(num::kReplayRun);
  auto settle = [&] {
    if (!queued.empty()) replay_tokens(queued, h, hv, s.data());
    queued.clear();
  };
  auto store = [&](int32_t row) {
    settle();
    store_head(layer, row, hv, s.data());
  };
  std::vector<L> base;  // a tree's restarts: the state after the pending tokens
  if (w.restarts && w.pending == 0) base = s;
  size_t next = 0;  // job.writes ascend, and so do a chain's tokens
  for (const RecurStep& step : w.steps) {
    if (step.restart || step.from_node >= 0) settle();
    if (step.restart) s = base;
    if (step.from_node >= 0) load_head(layer, write_row(job, step.from_node), hv, s.data());
    const int j = step.token, jn = j - w.pending;
    if (j < w.stored) {
      if (int(queued.size()) == num::kReplayRun) settle();
      queued.push_back(stored_token(job, layer, j));
    } else {
      settle();
      const float* qk = w.qk_hat.data() + (size_t(j) * H + h) * 2 * K;
      const float* v = w.conv_out.data() + size_t(j) * C + 2 * g.key_dim() + int64_t{hv} * V;
      const float* alpha = w.alpha.data() + (size_t(j) * HV + hv) * A;
      const float beta = w.beta[size_t(j) * HV + hv];
      bf16_bits* out = outputs && !step.silent
                           ? outputs + ((int64_t{jn} * g.layers + layer) * HV + hv) * V
                           : nullptr;
      float* delta_out = job.payload_out_slot != kNoRow && !step.silent
                             ? token_.delta(payload_out(job, layer, jn), hv)
                             : nullptr;
      for (int grp = 0; grp < groups; ++grp) {
        L vg, delta;
        copy_short(v + grp * kCpuLanes, kCpuLanes, vg.v);
        const L o = num::head_column(s.data() + grp * gs, 1, K, qk + K, qk, vg, alpha, A, beta,
                                     delta_out ? &delta : nullptr);
        if (out) {
          for (int l = 0; l < kCpuLanes; ++l)
            out[grp * kCpuLanes + l] = num::bf16_from_float(o.v[l]);
        }
        if (delta_out) copy_short(delta.v, kCpuLanes, delta_out + grp * kCpuLanes);
      }
    }
    if (step.silent) continue;
    // At a step boundary, continue from the value exactly as stored in the pool dtype.
    if (!ssm_f32() && job.rounds_after(j)) {
      settle();
      for (L& group : s)
        for (float& e : group.v)
          e = num::round_to_bf16(e);
    }
    if (jn < 0) {
      if (jn == -1 && job.pending.commit_row != kNoRow) store(job.pending.commit_row);
      if (jn == -1 && w.restarts) {
        settle();
        base = s;
      }
      continue;
    }
    if (!job.parents.empty()) {  // a tree runs its nodes depth first
      if (const int32_t row = write_row(job, jn); row != kNoRow) store(row);
      continue;
    }
    for (; next < job.writes.size() && job.writes[next].after_tokens <= jn + 1; ++next)
      store(job.writes[next].row);
    if (job.window && job.ssm_only_rows[jn] != kNoRow) store(job.ssm_only_rows[jn]);
  }
  settle();
  if (carry) s.swap(carry->heads[size_t(hv)]);
}

// Stored tokens of value head hv (key head h), in order, replayed from the values their verify
// stored (at most num::kReplayRun).
void CpuBackend::replay_tokens(std::span<const uint8_t* const> tokens, int h, int hv,
                               ColumnGroup* s) const {
  const int K = geo().head_k_dim, groups = geo().head_v_dim / kCpuLanes;
  const int A = geo().decay_values_per_head(), n = int(tokens.size());
  SPECSTATE_ASSERT(n <= num::kReplayRun, "a run of stored tokens fits head_column_replay");
  std::array<const float*, num::kReplayRun> k_hat, alpha, delta;
  for (int t = 0; t < n; ++t) {
    k_hat[size_t(t)] = token_.k_hat(tokens[size_t(t)], h);
    alpha[size_t(t)] = token_.decay(tokens[size_t(t)], hv);
    delta[size_t(t)] = token_.delta(tokens[size_t(t)], hv);
  }
  std::array<ColumnGroup, num::kReplayRun> d;
  for (int grp = 0; grp < groups; ++grp) {
    for (int t = 0; t < n; ++t)
      copy_short(delta[size_t(t)] + grp * kCpuLanes, kCpuLanes, d[size_t(t)].v);
    num::head_column_replay(s + grp * group_stride(), 1, K, k_hat.data(), alpha.data(), A, d.data(),
                            n);
  }
}

// Head hv of `row`, widened to fp32, into s ([V/8][K + kGroupPad] of ColumnGroup), and back in the
// pool dtype (bf16: round to nearest even). Each moves 8 contiguous columns at a time, both ways.
void CpuBackend::load_head(int layer, int32_t row, int hv, ColumnGroup* s) const {
  const int K = geo().head_k_dim, V = geo().head_v_dim, groups = V / kCpuLanes;
  const int gs = group_stride();
  const int64_t head = ssm_index(row) + int64_t{hv} * K * V;
  if (ssm_f32()) {
    const float* src = ssm_f32_[layer].data() + head;
    for (int i = 0; i < K; ++i) {
      if (i + 8 < K)
        for (int c = 0; c < V; c += 16)
          __builtin_prefetch(src + int64_t{i + 8} * V + c);
      for (int grp = 0; grp < groups; ++grp)
        std::memcpy(s[grp * gs + i].v, src + int64_t{i} * V + grp * kCpuLanes, sizeof(s->v));
    }
  } else {
    const bf16_bits* src = ssm_bf16_[layer].data() + head;
    for (int i = 0; i < K; ++i)
      for (int grp = 0; grp < groups; ++grp)
        for (int l = 0; l < kCpuLanes; ++l)
          s[grp * gs + i].v[l] = num::bf16_to_float(src[int64_t{i} * V + grp * kCpuLanes + l]);
  }
}

void CpuBackend::store_head(int layer, int32_t row, int hv, const ColumnGroup* s) {
  if (sinks(row)) return sink_head(layer, hv, s);
  const int64_t head = ssm_index(row) + int64_t{hv} * geo().head_k_dim * geo().head_v_dim;
  if (ssm_f32()) {
    // Streaming stores: a stored state is next read in a later call, so writing it around the
    // cache saves reading every line before it is overwritten (1.6x the store bandwidth here).
    write_head(ssm_f32_[layer].data() + head, s, /*stream=*/true);
  } else {
    write_head(ssm_bf16_[layer].data() + head, s);
  }
}

void CpuBackend::write_head(float* dst, const ColumnGroup* s, bool stream) const {
  const int K = geo().head_k_dim, V = geo().head_v_dim, groups = V / kCpuLanes;
  const int gs = group_stride();
#if defined(__AVX2__)
  if (stream) {
    for (int i = 0; i < K; ++i)
      for (int grp = 0; grp < groups; ++grp)
        _mm256_stream_ps(dst + int64_t{i} * V + grp * kCpuLanes,
                         _mm256_loadu_ps(s[grp * gs + i].v));
    _mm_sfence();  // ordered before whatever this thread does next (TBB hands results on)
    return;
  }
#endif
  (void)stream;
  for (int i = 0; i < K; ++i)
    for (int grp = 0; grp < groups; ++grp)
      std::memcpy(dst + int64_t{i} * V + grp * kCpuLanes, s[grp * gs + i].v, sizeof(s->v));
}

void CpuBackend::write_head(bf16_bits* dst, const ColumnGroup* s) const {
  const int K = geo().head_k_dim, V = geo().head_v_dim, groups = V / kCpuLanes;
  const int gs = group_stride();
  for (int i = 0; i < K; ++i)
    for (int grp = 0; grp < groups; ++grp)
      for (int l = 0; l < kCpuLanes; ++l)
        dst[int64_t{i} * V + grp * kCpuLanes + l] = num::bf16_from_float(s[grp * gs + i].v[l]);
}

// Head hv as store_head would write it, digested from a buffer in cache at its blocks' indices.
void CpuBackend::sink_head(int layer, int hv, const ColumnGroup* s) const {
  const int32_t wc = geo().conv_state_cols();
  const int64_t blocks = shape().ssm_row_bytes() / geo().num_v_heads / 8;  // of one head
  thread_local std::vector<uint64_t> head;
  head.resize(size_t(blocks));
  if (ssm_f32()) {
    write_head(reinterpret_cast<float*>(head.data()), s, /*stream=*/false);
  } else {
    write_head(reinterpret_cast<bf16_bits*>(head.data()), s);
  }
  sink_->sum += cpu::digest_blocks(reinterpret_cast<const uint8_t*>(head.data()), blocks,
                                   ssm_first_block(layer, wc) + uint64_t(hv) * uint64_t(blocks));
  ++sink_->heads;
}

void CpuBackend::do_prefill(std::span<const PrefillTask> tasks) {
  run(sequence_jobs(tasks));
}

void CpuBackend::do_verify(VerifyMode mode, std::span<const VerifyTask> tasks) {
  const ModelGeometry& g = geo();
  int32_t tokens = 0;
  for (const VerifyTask& t : tasks)
    tokens = std::max(tokens, t.tokens.count);
  const int64_t per_token = int64_t{g.layers} * g.num_v_heads * g.head_v_dim;
  outputs_.tasks = int32_t(tasks.size());
  outputs_.tokens = tokens;
  outputs_.values.assign(tasks.size() * tokens * per_token, 0);
  run(sequence_jobs(mode, tasks), outputs_.values.data());
}

void CpuBackend::do_replay(std::span<const ReplayTask> tasks) {
  run(sequence_jobs(tasks));
}

// A replay whose destination is digested, not written (DigestSink). A guarded task may not run
// and leave the destination as it was, so it takes the default path.
uint64_t CpuBackend::do_digest_replayed(const ReplayTask& task) {
  if (!task.guard.is_none()) return replay_then_digest(task);
  DigestSink sink;
  sink.row = task.dst_row;
  struct Attach {
    DigestSink*& at;
    ~Attach() { at = nullptr; }
  } attach{sink_ = &sink};
  run(sequence_jobs(std::span<const ReplayTask>(&task, 1)));
  const ModelGeometry& g = geo();
  SPECSTATE_ASSERT(sink.heads == int64_t{g.layers} * g.num_v_heads && sink.windows == g.layers,
                   "a replay writes each head and window of its destination once");
  return sink.sum;
}

void CpuBackend::do_copy_rows(std::span<const RowCopy> all) {
  std::vector<RowCopy> copies;
  for (const RowCopy& c : all) {
    if (runs(c.guard)) copies.push_back(c);
  }
  // A call's copies read every source before any write. When no destination is a source row,
  // copying one by one is the same, without staging each state in a host buffer.
  bool overlap = false;
  for (const RowCopy& d : copies) {
    for (const RowCopy& s : copies) {
      if (d.dst_row != kNoRow && (d.dst_row == s.src.ssm_row || d.dst_row == s.src.conv_row))
        overlap = true;
    }
  }
  if (!overlap) {
    for (const RowCopy& c : copies) {
      if (!c.src.is_none() && c.dst_row != kNoRow) copy_state(c.src, c.dst_row);
    }
    return;
  }
  // Read every source first: a copy may shift a window inside its own row.
  std::vector<RowBytes> sources;
  for (const RowCopy& c : copies) {
    const bool skip = c.src.is_none() || c.dst_row == kNoRow;
    sources.push_back(skip ? RowBytes{}
                           : do_read(c.src, c.src.conv_offset, geo().conv_state_cols()));
  }
  for (size_t i = 0; i < copies.size(); ++i) {
    if (copies[i].src.is_none() || copies[i].dst_row == kNoRow) continue;
    do_write_state(copies[i].dst_row, sources[i]);
  }
}

// In place, entry by entry in order: from[j] >= j and increasing, so no source is overwritten
// before it is read.
void CpuBackend::do_gather_payload(std::span<const PayloadGather> gathers) {
  const int64_t n = token_.bytes();
  for_each_layer([&](int l) {
    for (const PayloadGather& g : gathers) {
      for (size_t j = 0; j < g.from.size(); ++j) {
        if (g.from[j] == int32_t(j)) continue;
        std::memcpy(payload_at(l, g.slot, g.first_token, int32_t(j)),
                    payload_at(l, g.slot, g.first_token, g.from[j]), size_t(n));
      }
    }
  });
}

void CpuBackend::copy_state(const StateLoc& src, int32_t dst_row) {
  const ModelGeometry& g = geo();
  const int wc = g.conv_state_cols();
  const int64_t ssm_bytes = shape().ssm_row_bytes();
  for_each_layer([&](int l) {
    for (int ch = 0; ch < g.conv_dim(); ++ch) {
      const bf16_bits* from = conv_[l].data() + conv_index(src.conv_row, ch, src.conv_offset);
      copy_short(from, wc, conv_[l].data() + conv_index(dst_row, ch, 0));
    }
    std::memcpy(ssm_bytes_at(l, dst_row), ssm_bytes_at(l, src.ssm_row), ssm_bytes);
  });
}

void CpuBackend::do_write_state(int32_t row, const RowBytes& state) {
  const ModelGeometry& g = geo();
  const int wc = g.conv_state_cols();
  const int64_t ssm_bytes = shape().ssm_row_bytes();
  for_each_layer([&](int l) {
    for (int ch = 0; ch < g.conv_dim(); ++ch) {
      copy_short(state.conv.data() + (int64_t{l} * g.conv_dim() + ch) * wc, wc,
                 conv_[l].data() + conv_index(row, ch, 0));
    }
    std::memcpy(ssm_bytes_at(l, row), state.ssm.data() + l * ssm_bytes, ssm_bytes);
  });
}

void CpuBackend::do_fill_row(int32_t row, uint8_t byte) {
  for_each_layer([&](int l) {
    std::memset(conv_[l].data() + conv_index(row, 0, 0), byte, shape().conv_row_bytes());
    std::memset(ssm_bytes_at(l, row), byte, shape().ssm_row_bytes());
  });
}

RowBytes CpuBackend::do_read(const StateLoc& loc, int32_t first_col, int32_t cols) const {
  const ModelGeometry& g = geo();
  RowBytes out;
  out.conv.resize(int64_t{g.layers} * g.conv_dim() * cols);
  out.ssm.resize(shape().ssm_row_bytes() * g.layers);
  for_each_layer([&](int l) {
    for (int ch = 0; ch < g.conv_dim(); ++ch) {
      copy_short(conv_[l].data() + conv_index(loc.conv_row, ch, first_col), cols,
                 out.conv.data() + (int64_t{l} * g.conv_dim() + ch) * cols);
    }
    std::memcpy(out.ssm.data() + l * shape().ssm_row_bytes(), ssm_bytes_at(l, loc.ssm_row),
                shape().ssm_row_bytes());
  });
  return out;
}

// The digest terms of one layer's blocks, at their indices in digest_of's order (every layer's
// conv words, then every layer's SSM words), read where they are. The digest is a sum mod 2^64,
// so the layers' partial sums add up to the same value in any order. A layer's conv words and
// SSM bytes fill whole blocks (conv_dim is a multiple of 8: the constructor checks K and V).
uint64_t CpuBackend::digest_layer(const StateLoc& loc, int32_t first_col, int32_t cols,
                                  int layer) const {
  static_assert(std::endian::native == std::endian::little, "blocks are little-endian words");
  const ModelGeometry& g = geo();
  const int64_t conv_words = int64_t{g.conv_dim()} * cols;  // per layer, a multiple of 4
  // The window's words, channel by channel, gathered from the row's conv_cols columns.
  std::vector<bf16_bits> window(static_cast<size_t>(conv_words));
  for (int ch = 0; ch < g.conv_dim(); ++ch) {
    copy_short(conv_[layer].data() + conv_index(loc.conv_row, ch, first_col), cols,
               window.data() + int64_t{ch} * cols);
  }
  const uint64_t sum = cpu::digest_blocks(reinterpret_cast<const uint8_t*>(window.data()),
                                          conv_words / 4, conv_first_block(layer, cols));
  return sum + cpu::digest_blocks(ssm_bytes_at(layer, loc.ssm_row), shape().ssm_row_bytes() / 8,
                                  ssm_first_block(layer, cols));
}

uint64_t CpuBackend::do_digest(const StateLoc& loc, int32_t first_col, int32_t cols) const {
  return cpu::parallel_sum(geo().layers,
                           [&](int l) { return digest_layer(loc, first_col, cols, l); });
}

std::vector<uint8_t> CpuBackend::do_read_payload(int32_t slot) const {
  const ModelGeometry& g = geo();
  const int64_t per_token = token_.bytes();
  std::vector<uint8_t> out(size_t(g.layers) * shape().payload_slot_bytes());
  for (int t = 0; t < shape().payload_tokens; ++t) {
    for (int l = 0; l < g.layers; ++l) {
      const uint8_t* src = payload_at(l, slot, 0, t);
      std::copy(src, src + per_token, out.begin() + (int64_t{t} * g.layers + l) * per_token);
    }
  }
  return out;
}

}  // namespace

void check_cpu_geometry(const ModelGeometry& g) {
  switch (g.recurrence) {  // the step of this file runs both (the decay per head or per row)
    case RecurrenceKind::kGatedDeltaNet:
    case RecurrenceKind::kKimiDeltaAttention:
      break;
  }
  static_assert(kCpuLanes % 4 == 0, "conv_dim, a multiple of V, fills whole digest blocks");
  if (g.head_k_dim % num::kChains != 0 || g.head_v_dim % kCpuLanes != 0 ||
      g.conv_width > kMaxConvWidth) {
    throw InputError("backend 'cpu': unsupported geometry (needs K and V multiples of 8, W <= 8)");
  }
}

std::unique_ptr<StateBackend> make_cpu_backend(const PoolShape& shape, uint64_t seed) {
  return std::make_unique<CpuBackend>(shape, seed);
}

}  // namespace specstate
