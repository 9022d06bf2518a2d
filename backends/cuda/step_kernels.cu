// The step path: every job of a launch, at most kStepMaxTokens tokens each, in two kernels.
//
// prep_kernel, one block per (key head h, layer, job): owns the conv channels of q and k of h and
// of v of the HV/H value heads that use h, so it reads every source window it writes and no
// other block touches them. It stages the token inputs (generated or from a payload slot), writes
// payload and conv windows, computes the conv outputs, q_hat, k_hat and the gates, and stores the
// per-token vectors in the step scratch.
//
// recur_kernel, one block per (value head, layer, job): the canonical step of
// core/numerics/gdn_step.h with its reductions split the way the canonical sequence splits them.
// Warp w owns V columns [8w, 8w+8); lane 4c + p owns columns 8w+2p, 8w+2p+1 and the K/8 state
// rows of chain c, in registers (32 fp32 values for K = 128), so a head is 512 threads of about
// 64 registers and a multiprocessor holds two heads (32 warps) while their state streams in.
// Each lane runs its chain with the header's row functions; an xor butterfly over the lane bits
// of the chain index combines the 8 chains in combine_chains' tree, every lane getting the same
// bits. Outputs and every requested state are written after their token.
#include <algorithm>
#include <type_traits>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/job_view.cuh"
#include "backends/cuda/kernels.h"
#include "core/errors.h"
#include "core/numerics/gdn_step.h"
#include "core/numerics/inputs.h"

namespace specstate::cuda {
namespace {

using num::bf16_bits;

constexpr int kConvWidth = 4;
constexpr int kWc = kConvWidth - 1;
constexpr int kPrepThreads = 256;
constexpr int kRecurChunk = 16;  // tokens staged in shared memory at a time

// ---- prep

struct PrepLayout {
  int nch;        // 2K + ratio * K channels
  int hist_cols;  // W-1 + tokens
  int tokens;     // pending + new of the longest job
  int ratio;      // value heads per key head
  __host__ __device__ size_t bytes(int K) const {
    return (size_t(tokens) * 2 * K + 2 * size_t(tokens)) * sizeof(float) +
           size_t(tokens) * sizeof(uint64_t) +
           (size_t(nch) * hist_cols + 2 * size_t(tokens) * ratio) * sizeof(bf16_bits);
  }
};

struct PrepShared {
  float* qk;           // [tokens, 2K] fp32: conv outputs of q, k
  float* denom;        // [tokens, 2] fp32
  uint64_t* x_prefix;  // [tokens]: conv-input hash state before the channel (generated tokens)
  bf16_bits* hist;     // [nch, hist_cols] bf16: source window, then every token's input
  bf16_bits* ab;       // [tokens, ratio, 2] bf16: gate inputs a, b
};

struct PrepBlock {
  JobView j;
  int h, ratio, K, nch, hist_cols;

  // Conv channel of local channel c: [q of key head h | k of h | v of the value heads of h].
  __device__ int channel(int c) const {
    if (c < K) return h * K + c;
    if (c < 2 * K) return j.p.H * K + h * K + (c - K);
    return 2 * j.p.H * K + h * ratio * K + (c - 2 * K);
  }
};

__device__ PrepShared carve_prep(const PrepLayout& lay, int K) {
  extern __shared__ float4 prep_raw[];
  PrepShared s;
  s.qk = reinterpret_cast<float*>(prep_raw);
  s.denom = s.qk + size_t(lay.tokens) * 2 * K;
  s.x_prefix = reinterpret_cast<uint64_t*>(s.denom + 2 * lay.tokens);  // 8-byte aligned: even
  s.hist = reinterpret_cast<bf16_bits*>(s.x_prefix + lay.tokens);
  s.ab = s.hist + size_t(lay.nch) * lay.hist_cols;
  return s;
}

// The source window (the carry, a pool row, or zeros) -> hist columns 0..W-2.
__device__ void prep_load_window(const PrepBlock& b, const PrepShared& sh) {
  const SeqJob& job = b.j.job;
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
    const int ch = b.channel(c);
    const bf16_bits* src = job.from_carry ? b.j.carry_conv_at(ch)
                           : job.from_zero
                               ? nullptr
                               : b.j.conv_at(job.from_conv_row, ch, job.from_conv_offset);
    for (int t = 0; t < kWc; ++t)
      sh.hist[c * b.hist_cols + t] = src ? src[t] : bf16_bits{0};
  }
}

// gen_conv_input(coord, channel) is input_hash(seed, kConvInput, request, position, layer,
// channel) scaled into [-2, 2): four of its five mix64 rounds do not depend on the channel. They
// are computed once per token here and the last round per channel in prep_stage; the values are
// those of gen_conv_input (the differential tests compare every input the CPU generates).
__device__ uint64_t conv_input_prefix(const num::TokenCoord& t) {
  uint64_t h = num::mix64(t.seed ^ (uint64_t(num::InputStream::kConvInput) << 56));
  h = num::mix64(h ^ t.request);
  h = num::mix64(h ^ t.position);
  return num::mix64(h ^ t.layer);
}
__device__ bf16_bits conv_input_from_prefix(uint64_t prefix, uint32_t channel) {
  return num::uniform_bf16(num::mix64(prefix ^ channel), -2.0f, 4.0f);
}

// Every token's inputs -> hist columns W-1.. and ab; payload-mode copies of the new tokens.
__device__ void prep_stage(const PrepBlock& b, const PrepShared& sh, int total) {
  const SeqJob& job = b.j.job;
  const int pending = job.pending_count;
  const bool to_payload = job.payload_out_slot != kNoRow;
  const int C = b.j.p.conv_dim();
  for (int j = threadIdx.x; j < total; j += blockDim.x) {
    if (!b.j.payload_token(j)) sh.x_prefix[j] = conv_input_prefix(b.j.coord(j));
  }
  __syncthreads();
  for (int j = 0; j < total; ++j) {  // nested loops: no run-time division in the index math
    const bf16_bits* src = b.j.payload_token(j);
    bf16_bits* out =
        to_payload && j >= pending ? b.j.payload_at(job.payload_out_slot, j - pending) : nullptr;
    for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
      const int ch = b.channel(c);
      const bf16_bits x = src ? src[ch] : conv_input_from_prefix(sh.x_prefix[j], ch);
      sh.hist[c * b.hist_cols + kWc + j] = x;
      if (out) out[ch] = x;
    }
  }
  for (int idx = threadIdx.x; idx < b.ratio * total; idx += blockDim.x) {
    const int r = idx % b.ratio, j = idx / b.ratio, hv = b.h * b.ratio + r;
    const bf16_bits* src = b.j.payload_token(j);
    const bf16_bits a = src ? src[C + hv] : num::gen_gate_a(b.j.coord(j), hv);
    const bf16_bits bb = src ? src[C + b.j.p.HV + hv] : num::gen_gate_b(b.j.coord(j), hv);
    sh.ab[2 * idx] = a;
    sh.ab[2 * idx + 1] = bb;
    if (to_payload && j >= pending) {
      bf16_bits* dst = b.j.payload_at(job.payload_out_slot, j - pending);
      dst[C + hv] = a;
      dst[C + b.j.p.HV + hv] = bb;
    }
  }
}

// The window after sequence token j (hist columns j+1 .. j+W-1) -> dst(channel)[0..W-2].
template <class Dst>
__device__ void prep_store_window(const PrepBlock& b, const PrepShared& sh, int j, Dst dst) {
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
    bf16_bits* out = dst(b.channel(c));
    for (int t = 0; t < kWc; ++t)
      out[t] = sh.hist[c * b.hist_cols + j + 1 + t];
  }
}

// Conv windows of every full-state write, token by token (a later token's write wins). In window
// mode the source conv row is rewritten last, as [window[1..W-2], x_0 .. x_{n-1}], so writes of
// that row are skipped before. A job that carries leaves its last window in the carry.
__device__ void prep_windows(const PrepBlock& b, const PrepShared& sh, int total) {
  const SeqJob& job = b.j.job;
  const int pending = job.pending_count;
  auto to_row = [&](int row) { return [&b, row](int ch) { return b.j.conv_at(row, ch, 0); }; };
  auto store_row = [&](int row, int j) {
    if (job.rewrite_wide_conv && row == job.from_conv_row) return;
    prep_store_window(b, sh, j, to_row(row));
  };
  for (int j = 0; j < total; ++j) {
    if (j == pending - 1) store_row(job.pending_commit_row, j);
    for (int w = 0; w < job.write_count; ++w) {
      const SeqWrite wr = b.j.L.writes[job.first_write + w];
      if (pending + wr.after_tokens - 1 == j) store_row(wr.row, j);
    }
  }
  if (job.to_carry) {
    prep_store_window(b, sh, total - 1, [&b](int ch) { return b.j.carry_conv_at(ch); });
  }
  if (job.rewrite_wide_conv) {
    const int skip = pending + 1, cols = kWc - 1 + job.new_count;
    for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
      bf16_bits* dst = b.j.conv_at(job.from_conv_row, b.channel(c), 0);
      for (int t = 0; t < cols; ++t)
        dst[t] = sh.hist[c * b.hist_cols + skip + t];
    }
  }
}

template <int K>
__device__ void prep_conv(const PrepBlock& b, const PrepShared& sh, int total) {
  const DevicePool& p = b.j.p;
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {  // taps once per channel
    const int ch = b.channel(c);
    float taps[kConvWidth];
    const float* taps_src = p.conv_taps + (int64_t{b.j.layer} * p.conv_dim() + ch) * kConvWidth;
#pragma unroll
    for (int t = 0; t < kConvWidth; ++t)
      taps[t] = taps_src[t];
    for (int j = 0; j < total; ++j) {
      float in[kConvWidth];
#pragma unroll
      for (int t = 0; t < kConvWidth; ++t)
        in[t] = num::bf16_to_float(sh.hist[c * b.hist_cols + j + t]);
      const float out = num::conv_channel(in, taps, kConvWidth);
      if (c < 2 * K) {
        sh.qk[j * 2 * K + c] = out;
      } else {  // v: a bf16 value already, stored exactly
        const int64_t v_index =
            b.j.token_index(j) * p.HV * K + int64_t{b.h} * b.ratio * K + (c - 2 * K);
        b.j.L.step_v[v_index] = num::bf16_from_float(out);
      }
    }
  }
}

template <int K>
__device__ void prep_norms_and_gates(const PrepBlock& b, const PrepShared& sh, int total) {
  const DevicePool& p = b.j.p;
  for (int idx = threadIdx.x; idx < (2 + b.ratio) * total; idx += blockDim.x) {
    if (idx < 2 * total) {
      sh.denom[idx] = num::l2_norm_denominator(sh.qk + (idx >> 1) * 2 * K + (idx & 1) * K, K);
    } else {
      const int g = idx - 2 * total, r = g % b.ratio, j = g / b.ratio, hv = b.h * b.ratio + r;
      const int pi = b.j.layer * p.HV + hv;
      const num::Gates gates =
          num::gdn_gates(num::bf16_to_float(sh.ab[2 * g]), num::bf16_to_float(sh.ab[2 * g + 1]),
                         p.a_log[pi], p.dt_bias[pi]);
      float* dst = b.j.L.step_gates + (b.j.token_index(j) * p.HV + hv) * 2;
      dst[0] = gates.alpha;
      dst[1] = gates.beta;
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < 2 * K * total; idx += blockDim.x) {
    const int j = idx / (2 * K), c = idx % (2 * K);
    const float x = sh.qk[idx];
    const float y = c < K ? num::normalize_query(x, sh.denom[2 * j], p.q_scale)
                          : num::normalize_key(x, sh.denom[2 * j + 1]);
    b.j.L.step_qk[(b.j.token_index(j) * p.H + b.h) * 2 * K + c] = y;
  }
}

template <int K>
__global__ void __launch_bounds__(kPrepThreads)
    prep_kernel(const __grid_constant__ DevicePool p, const __grid_constant__ SequenceLaunch L,
                const __grid_constant__ PrepLayout lay) {
  // Let the recurrence grid start loading states as soon as every prep block runs (it waits
  // for this grid's completion before it reads the step scratch).
  asm volatile("griddepcontrol.launch_dependents;");
  const int task = blockIdx.z;
  const SeqJob& job = L.jobs[task];
  if (!job.active) return;
  const PrepBlock b{
      {p, L, job, task, int(blockIdx.y)}, int(blockIdx.x), lay.ratio, K, lay.nch, lay.hist_cols};
  const PrepShared sh = carve_prep(lay, K);
  const int total = b.j.total_tokens();
  prep_load_window(b, sh);
  __syncthreads();
  prep_stage(b, sh, total);
  __syncthreads();
  prep_windows(b, sh, total);
  prep_conv<K>(b, sh, total);
  __syncthreads();
  prep_norms_and_gates<K>(b, sh, total);
}

// ---- recurrence

using Pair = num::Lanes<2>;  // the two V columns of a thread

template <int K>
struct Recur {
  static constexpr int kRows = K / num::kChains;         // state rows of a thread (one chain)
  static constexpr int kThreads = K / 2 * num::kChains;  // V = K columns, two per thread
  static constexpr int kGroup = kRows < 4 ? kRows : 4;   // k_hat/q_hat values per shared load
  // Per token in shared memory, fp32: q_hat and k_hat chain by chain, each chain padded to
  // kStride floats so that the 8 chains of a warp's 16-byte loads fall in distinct banks; then v
  // [V]; then alpha, beta, 2 pad.
  static constexpr int kStride = kRows % 4 == 0 ? kRows + 4 : kRows;
  static constexpr int kQ = 0;
  static constexpr int kK = num::kChains * kStride;
  static constexpr int kV = 2 * kK;
  static constexpr int kGates = kV + K;
  static constexpr int kTokenFloats = kGates + 4;
  static_assert(num::kChains == 8 && K % 16 == 0, "lane layout: 8 chains x 4 column pairs");
};

struct Lane {
  int chain, col0;  // chain index; first of the thread's two columns
};

template <int K>
__device__ Lane lane_of_thread() {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  return {lane >> 2, 8 * warp + 2 * (lane & 3)};
}

// combine_chains' tree across the warp: chain bit k is lane bit k+2, and level k adds the
// partner whose chain differs in bit k.
__device__ __forceinline__ Pair sum_over_chains(Pair x) {
#pragma unroll
  for (int bit = 0; bit < 3; ++bit) {
#pragma unroll
    for (int l = 0; l < 2; ++l)
      x.v[l] = num::fadd(x.v[l], __shfl_xor_sync(0xFFFFFFFFu, x.v[l], 4 << bit));
  }
  return x;
}

template <int N>
__device__ __forceinline__ void load_shared(const float* src, float (&dst)[N]) {
  if constexpr (N == 4) {
    const float4 v = *reinterpret_cast<const float4*>(src);
    dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i)
      dst[i] = src[i];
  }
}

// One state row of the thread's two columns in the pool dtype, widened to fp32 (exact), and
// back, rounding to the element type.
__device__ __forceinline__ Pair load_pair(const float* src) {
  const float2 f = *reinterpret_cast<const float2*>(src);
  return {{f.x, f.y}};
}
__device__ __forceinline__ Pair load_pair(const bf16_bits* src) {
  const uint32_t w = *reinterpret_cast<const uint32_t*>(src);
  return {{num::bf16_to_float(bf16_bits(w)), num::bf16_to_float(bf16_bits(w >> 16))}};
}
__device__ __forceinline__ void store_pair(float* dst, Pair x) {
  *reinterpret_cast<float2*>(dst) = make_float2(x.v[0], x.v[1]);
}
__device__ __forceinline__ uint32_t bf16_pair(Pair x) {
  return uint32_t(num::bf16_from_float(x.v[0])) | uint32_t(num::bf16_from_float(x.v[1])) << 16;
}
__device__ __forceinline__ void store_pair(bf16_bits* dst, Pair x) {
  *reinterpret_cast<uint32_t*>(dst) = bf16_pair(x);
}

// The thread's state rows (chain * kRows ..) of one [K, K] head stored as Elem.
template <int K, class Elem>
__device__ __forceinline__ void load_rows(const Elem* head, Lane ln, Pair (&s)[Recur<K>::kRows]) {
  const Elem* src = head + ln.chain * Recur<K>::kRows * K + ln.col0;
#pragma unroll
  for (int r = 0; r < Recur<K>::kRows; ++r)
    s[r] = load_pair(src + r * K);
}

template <int K, class Elem>
__device__ __forceinline__ void store_rows(Elem* head, Lane ln, const Pair (&s)[Recur<K>::kRows]) {
  Elem* dst = head + ln.chain * Recur<K>::kRows * K + ln.col0;
#pragma unroll
  for (int r = 0; r < Recur<K>::kRows; ++r)
    store_pair(dst + r * K, s[r]);
}

template <bool kBf16>
using PoolElem = std::conditional_t<kBf16, bf16_bits, float>;

template <int K, bool kBf16>
__device__ PoolElem<kBf16>* pool_head(const JobView& jv, int row, int hv) {
  return static_cast<PoolElem<kBf16>*>(jv.p.ssm) + jv.ssm_head(row, hv);
}

// One token of the canonical step for the thread's chain and columns (t: the token's vectors in
// shared memory). Returns o, combined over the chains, before rounding.
template <int K>
__device__ __forceinline__ Pair recur_token(const float* t, Lane ln, Pair (&s)[Recur<K>::kRows]) {
  using R = Recur<K>;
  const float* q = t + R::kQ + ln.chain * R::kStride;
  const float* k = t + R::kK + ln.chain * R::kStride;
  const float alpha = t[R::kGates], beta = t[R::kGates + 1];
  Pair m{};
#pragma unroll
  for (int g = 0; g < R::kRows; g += R::kGroup) {
    float kg[R::kGroup];
    load_shared(k + g, kg);
#pragma unroll
    for (int u = 0; u < R::kGroup; ++u)
      m = num::decay_project_row(s[g + u], kg[u], alpha, m);
  }
  const Pair v{{t[R::kV + ln.col0], t[R::kV + ln.col0 + 1]}};
  const Pair delta = num::gdn_delta(v, sum_over_chains(m), beta);
  Pair o{};
#pragma unroll
  for (int g = 0; g < R::kRows; g += R::kGroup) {
    float kg[R::kGroup], qg[R::kGroup];
    load_shared(k + g, kg);
    load_shared(q + g, qg);
#pragma unroll
    for (int u = 0; u < R::kGroup; ++u)
      o = num::update_output_row(s[g + u], kg[u], qg[u], delta, o);
  }
  return sum_over_chains(o);
}

// Output o of new token jn for the thread's two columns (one lane per column pair writes).
__device__ void store_output(const JobView& jv, int hv, int jn, Lane ln, Pair o) {
  if (!jv.L.outputs || ln.chain != 0) return;
  const DevicePool& p = jv.p;
  const int64_t idx =
      (((int64_t{jv.task} * jv.L.output_tokens + jn) * p.layers + jv.layer) * p.HV + hv) * p.V;
  *reinterpret_cast<uint32_t*>(jv.L.outputs + idx + ln.col0) = bf16_pair(o);
}

// Tokens c0 .. c0+n-1 of head (h, hv): step scratch -> shared, in Recur<K>'s token layout.
template <int K>
__device__ void recur_stage(const JobView& jv, int h, int hv, int c0, int n, float* tok) {
  using R = Recur<K>;
  const DevicePool& p = jv.p;
  for (int idx = threadIdx.x; idx < n * 2 * K; idx += blockDim.x) {
    const int j = idx / (2 * K), e = idx % (2 * K), which = e / K, i = e % K;
    const float x = jv.L.step_qk[(jv.token_index(c0 + j) * p.H + h) * 2 * K + e];
    tok[j * R::kTokenFloats + (which ? R::kK : R::kQ) + (i / R::kRows) * R::kStride +
        i % R::kRows] = x;
  }
  for (int idx = threadIdx.x; idx < n * K; idx += blockDim.x) {
    const int j = idx / K, c = idx % K;
    tok[j * R::kTokenFloats + R::kV + c] =
        num::bf16_to_float(jv.L.step_v[(jv.token_index(c0 + j) * p.HV + hv) * K + c]);
  }
  for (int idx = threadIdx.x; idx < 2 * n; idx += blockDim.x) {
    tok[(idx >> 1) * R::kTokenFloats + R::kGates + (idx & 1)] =
        jv.L.step_gates[(jv.token_index(c0 + (idx >> 1)) * p.HV + hv) * 2 + (idx & 1)];
  }
}

// The states the job asks for after sequence token j, stored from the thread's registers: the
// pending replay's commit (after rounding the state to the pool dtype, which is what the tokens
// after it continue from), the window mode's SSM row, the full-state writes, the carry. One
// store site for all pool rows keeps the unrolled stores (and their registers) in one place.
template <int K, bool kBf16>
__device__ void store_states(const JobView& jv, int hv, int j, Lane ln,
                             Pair (&s)[Recur<K>::kRows]) {
  const SeqJob& job = jv.job;
  const int jn = j - job.pending_count;  // -1: the last pending token
  if (jn < -1) return;
  if constexpr (kBf16) {
    if (jn == -1) {
#pragma unroll
      for (int r = 0; r < Recur<K>::kRows; ++r)
        s[r] = {{num::round_to_bf16(s[r].v[0]), num::round_to_bf16(s[r].v[1])}};
    }
  }
  for (int d = -2; d < job.write_count; ++d) {
    int32_t row = kNoRow;
    if (d == -2) {
      if (jn == -1) row = job.pending_commit_row;
    } else if (jn >= 0 && d == -1) {
      if (jn < kMaxVerifyTokens) row = job.ssm_only_rows[jn];
    } else if (jn >= 0) {
      const SeqWrite wr = jv.L.writes[job.first_write + d];
      if (wr.after_tokens == jn + 1) row = wr.row;
    }
    if (row != kNoRow) store_rows<K>(pool_head<K, kBf16>(jv, row, hv), ln, s);
  }
  if (job.to_carry && j == jv.total_tokens() - 1) store_rows<K>(jv.carry_ssm_head(hv), ln, s);
}

template <int K, bool kBf16>
__global__ void __launch_bounds__(Recur<K>::kThreads, K == 128 ? 2 : 8)
    recur_kernel(const __grid_constant__ DevicePool p, const __grid_constant__ SequenceLaunch L) {
  using R = Recur<K>;
  const int task = blockIdx.z, hv = blockIdx.x;
  const SeqJob& job = L.jobs[task];
  const JobView jv{p, L, job, task, int(blockIdx.y)};
  const Lane ln = lane_of_thread<K>();
  for (int jn = job.active ? job.new_count : 0; jn < L.output_tokens; ++jn)
    store_output(jv, hv, jn, ln, Pair{});
  if (!job.active) return;

  Pair s[R::kRows];  // the thread's rows of its two columns, fp32
  if (job.from_carry) {
    load_rows<K>(static_cast<const float*>(jv.carry_ssm_head(hv)), ln, s);
  } else if (job.from_zero) {
#pragma unroll
    for (int r = 0; r < R::kRows; ++r)
      s[r] = Pair{};
  } else {
    load_rows<K>(pool_head<K, kBf16>(jv, job.from_ssm_row, hv), ln, s);
  }
  // Launched dependent on the prep grid (programmatic dependent launch): the state loads above
  // overlap the end of prep; its writes are visible after this wait. Nothing before the wait
  // touches what prep writes (conv windows, payload, step scratch).
  asm volatile("griddepcontrol.wait;" ::: "memory");
  extern __shared__ float4 recur_raw[];
  float* tok = reinterpret_cast<float*>(recur_raw);  // [kRecurChunk, kTokenFloats] fp32
  const int h = hv / (p.HV / p.H), total = jv.total_tokens();
  for (int c0 = 0; c0 < total; c0 += kRecurChunk) {
    const int n = min(kRecurChunk, total - c0);
    recur_stage<K>(jv, h, hv, c0, n, tok);
    __syncthreads();
    for (int jl = 0; jl < n; ++jl) {
      const int j = c0 + jl;
      const Pair o = recur_token<K>(tok + jl * R::kTokenFloats, ln, s);
      store_states<K, kBf16>(jv, hv, j, ln, s);
      if (j >= job.pending_count) store_output(jv, hv, j - job.pending_count, ln, o);
    }
    __syncthreads();
  }
}

template <int K, bool kBf16>
void launch_recur(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  cudaLaunchAttribute dependent;
  dependent.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  dependent.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(p.HV, p.layers, L.job_count);
  config.blockDim = dim3(Recur<K>::kThreads);
  config.dynamicSmemBytes = size_t(kRecurChunk) * Recur<K>::kTokenFloats * sizeof(float);
  config.stream = stream;
  config.attrs = &dependent;
  config.numAttrs = 1;
  CUDA_CHECK(cudaLaunchKernelEx(&config, recur_kernel<K, kBf16>, p, L));
  CUDA_CHECK_LAUNCH();
}

template <int K>
void launch_step_k(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  PrepLayout lay;
  lay.ratio = p.HV / p.H;
  lay.nch = 2 * K + lay.ratio * K;
  lay.tokens = std::max(1, L.max_tokens);
  lay.hist_cols = kWc + lay.tokens;
  const size_t smem = lay.bytes(K);
  if (smem > 48 * 1024) {
    CUDA_CHECK(cudaFuncSetAttribute(prep_kernel<K>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem)));
  }
  prep_kernel<K><<<dim3(p.H, p.layers, L.job_count), kPrepThreads, smem, stream>>>(p, L, lay);
  CUDA_CHECK_LAUNCH();
  if (p.ssm_bf16) {
    launch_recur<K, true>(p, L, stream);
  } else {
    launch_recur<K, false>(p, L, stream);
  }
}

}  // namespace

bool step_kernels_support(int32_t K, int32_t V, int32_t W) {
  return (K == 16 || K == 128) && V == K && W == kConvWidth;
}

void launch_step(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  SPECSTATE_ASSERT(L.max_tokens <= kStepMaxTokens, "a step launch runs at most kStepMaxTokens");
  if (L.job_count == 0) return;
  switch (p.K) {
    case 128:
      return launch_step_k<128>(p, L, stream);
    case 16:
      return launch_step_k<16>(p, L, stream);
  }
  SPECSTATE_ASSERT(false, "the backend refuses geometries the step kernels are not built for");
}

}  // namespace specstate::cuda
