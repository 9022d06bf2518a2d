// The step path: every job of a launch, at most kStepMaxTokens tokens each, in two kernels.
//
// prep_kernel, one block per (key head h, layer, job): owns the conv channels of q and k of h and
// of v of the HV/H value heads that use h, so it reads every source window it writes and no
// other block touches them. A thread owns a pair of adjacent channels from its source window to
// its conv outputs: it stages the pair's token inputs (generated or from a payload slot), writes
// payload and conv windows, and computes the conv outputs; then the block computes q_hat, k_hat
// and the gates and stores the per-token vectors in the step scratch.
//
// recur_kernel, one block per (value head, layer, job): the canonical step of
// core/numerics/gdn_step.h with its reductions split the way the canonical sequence splits them.
// Thread t owns two columns and the K/8 state rows of one chain, in registers (32 fp32 values for
// K = 128): a head is 512 threads of at most 64 registers, and a multiprocessor holds two heads
// (32 warps) while their state streams in. A warp holds the 8 chains of 4 column pairs, so the
// chains' partials combine by an xor butterfly of shuffles, which is combine_chains' tree, with
// no barrier inside the token loop; the state lives in the device layout of ssm_layout.h, where
// each of a thread's loads and stores is one vector (16 bytes; 8 for K = 16 bf16) and a warp's
// are whole lines. A chunk of up to 16 tokens is staged in shared memory by cp.async; the stored
// tokens (replayed from the values their verify kept) run without a reduction. Kimi Delta
// Attention (recur_kernel's kKda) stages a decay per state row beside k_hat and applies it where
// Gated DeltaNet applies the head's one: the same operations per element. Every requested
// state is written after its token (in launches whose jobs store sparsely, a per-chunk mask says
// after which tokens); the outputs and payload deltas of a chunk's computed tokens after the
// chunk.
#include <algorithm>
#include <type_traits>

#include "backends/cuda/bf16_pair.cuh"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/job_view.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/ssm_layout.h"
#include "core/errors.h"
#include "core/numerics/gdn_step.h"
#include "core/numerics/inputs.h"

namespace specstate::cuda {
namespace {

using num::bf16_bits;

constexpr int kConvWidth = 4;
constexpr int kWc = kConvWidth - 1;
constexpr int kPrepThreads = 256;
// Prep is issue-bound: six blocks a multiprocessor (40 registers, no spills) keep its schedulers
// fed. Left to itself ptxas takes 64 registers (four blocks), and the batch-64 steps on an H100
// were 7-13 % slower than at six; at eight (32 registers) the ring was 6 % slower.
constexpr int kPrepBlocksPerSm = 6;
constexpr int kRecurChunk = 16;  // tokens staged in shared memory at a time
static_assert(kRecurChunk <= 32, "a chunk's store mask is one ballot: a lane per token");

// ---- prep

// The channel phase runs one thread per pair of adjacent local channels (2q, 2q+1): adjacent conv
// channels too (each group is K wide, K even), so that x moves in 32-bit words, and the thread
// that stages a pair's inputs is the one that reads them back (windows, conv) without a barrier.
struct PrepLayout {
  int nch;        // 2K + ratio * K channels
  int hist_cols;  // W-1 + tokens
  int tokens;     // pending + new of the longest job
  int ratio;      // value heads per key head
  __host__ __device__ int pairs() const { return nch / 2; }
  __host__ __device__ size_t bytes(int K) const {
    return (size_t(tokens) * 2 * K + 2 * size_t(tokens)) * sizeof(float) +
           size_t(tokens) * 3 * sizeof(uint64_t) + size_t(hist_cols) * pairs() * sizeof(uint32_t);
  }
};

struct PrepShared {
  float* qk;           // [tokens, 2K] fp32: conv outputs of q, k
  float* denom;        // [tokens, 2] fp32
  uint64_t* x_prefix;  // [tokens]: conv-input hash state before the channel (generated tokens)
  const uint8_t** in;  // [tokens]: a stored token's payload, else null
  uint8_t** out;       // [tokens]: where a new token's payload goes (payload mode), else null
  uint32_t* hist;      // [hist_cols, pairs]: a channel pair's bf16 inputs, source window first
};

template <bool kTree>
struct PrepBlock {
  JobView j;
  int h, ratio, K, pairs;  // pairs: channel pairs of the block (PrepLayout::pairs)

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
  static_assert(sizeof(void*) == sizeof(uint64_t), "the token table's pointers take 8 bytes");
  s.in = reinterpret_cast<const uint8_t**>(s.x_prefix + lay.tokens);
  s.out = reinterpret_cast<uint8_t**>(s.x_prefix + 2 * lay.tokens);
  s.hist = reinterpret_cast<uint32_t*>(s.x_prefix + 3 * lay.tokens);
  return s;
}

__device__ __forceinline__ uint32_t pack_pair(bf16_bits lo, bf16_bits hi) {
  return uint32_t{lo} | uint32_t{hi} << 16;
}

// What every thread asks of sequence token j, once per block: its payload in and out, and the
// hash prefix of its generated conv inputs.
template <bool kTree>
__device__ void prep_tokens(const PrepBlock<kTree>& b, const PrepShared& sh, int total) {
  const SeqJob& job = b.j.job;
  const int stored = b.j.stored_tokens();
  const bool to_payload = job.payload_out_slot != kNoRow;
  for (int j = int(threadIdx.x); j < total; j += blockDim.x) {
    sh.in[j] = j < stored ? b.j.stored_token(j) : nullptr;
    sh.out[j] = to_payload && j >= stored ? b.j.payload_out(j - job.pending_count) : nullptr;
    sh.x_prefix[j] = j >= stored ? num::conv_input_prefix(b.j.template coord<kTree>(j)) : 0;
  }
}

// The source window of pair q (the carry, a pool row, or zeros where src is null) -> hist
// columns 0..W-2. Channel ch + 1's window is `stride` values after ch's.
__device__ void prep_load_window(const bf16_bits* src, int stride, const PrepShared& sh, int pairs,
                                 int q) {
  for (int t = 0; t < kWc; ++t)
    sh.hist[t * pairs + q] = src ? pack_pair(src[t], src[stride + t]) : 0u;
}

// Pair q's window after sequence token j (its conv taps 1 .. W-1: hist columns along a chain)
// -> dst[0..W-2] and dst[stride..stride+W-2].
template <bool kTree>
__device__ void prep_store_window(const PrepBlock<kTree>& b, const PrepShared& sh, int q, int j,
                                  bf16_bits* dst, int stride) {
  int cols[kConvWidth];
  b.j.template tap_columns<kConvWidth, kTree>(j, cols);
  for (int t = 0; t < kWc; ++t) {
    const uint32_t w = sh.hist[cols[1 + t] * b.pairs + q];
    dst[t] = bf16_bits(w & 0xFFFFu);
    dst[stride + t] = bf16_bits(w >> 16);
  }
}

// Pair q's conv inputs of every token -> hist columns W-1.. (a stored token's only where a window
// or tap reads it: the last W-1 of them); payload mode keeps the new tokens' x.
template <bool kTree>
__device__ void prep_stage(const PrepBlock<kTree>& b, const PrepShared& sh, int total, int q,
                           int ch) {
  const uint32_t model_ch = b.j.p.model.conv_channel(uint32_t(ch));  // so is ch + 1's
  for (int j = max(0, b.j.stored_tokens() - kWc); j < total; ++j) {
    const uint8_t* in = sh.in[j];
    const uint32_t x2 = in ? *reinterpret_cast<const uint32_t*>(num::PayloadToken::x(in) + ch)
                           : pack_pair(num::conv_input_at(sh.x_prefix[j], model_ch),
                                       num::conv_input_at(sh.x_prefix[j], model_ch + 1));
    sh.hist[(kWc + j) * b.pairs + q] = x2;
    if (uint8_t* out = sh.out[j]) *reinterpret_cast<uint32_t*>(num::PayloadToken::x(out) + ch) = x2;
  }
}

// Pair q's conv windows of every full-state write, token by token (a later token's write wins).
// In window mode the source conv row is rewritten last, as [window[1..W-2], x_0 .. x_{n-1}], so
// writes of that row are skipped before. A job that carries leaves its last window in the carry.
template <bool kTree>
__device__ void prep_windows(const PrepBlock<kTree>& b, const PrepShared& sh, int total, int q,
                             int ch) {
  const SeqJob& job = b.j.job;
  const int pending = job.pending_count, conv_cols = b.j.p.conv_cols;
  auto store_row = [&](int row, int j) {
    if (row == kNoRow || (job.rewrite_wide_conv && row == job.from_conv_row)) return;
    prep_store_window(b, sh, q, j, b.j.conv_at(row, ch, 0), conv_cols);
  };
  for (int j = 0; j < total; ++j) {
    if (j == pending - 1) store_row(job.pending_commit_row, j);
    for (int w = 0; w < job.write_count; ++w) {
      const SeqWrite wr = b.j.L.writes[job.first_write + w];
      if (pending + wr.after_tokens - 1 == j) store_row(wr.row, j);
    }
  }
  if (job.to_carry) prep_store_window(b, sh, q, total - 1, b.j.carry_conv_at(ch), kWc);
  if (job.rewrite_wide_conv) {
    const int skip = pending + 1, cols = kWc - 1 + job.new_count;
    bf16_bits* dst = b.j.conv_at(job.from_conv_row, ch, 0);
    for (int t = 0; t < cols; ++t) {
      const uint32_t w = sh.hist[(skip + t) * b.pairs + q];
      dst[t] = bf16_bits(w & 0xFFFFu);
      dst[conv_cols + t] = bf16_bits(w >> 16);
    }
  }
}

// Pair q's conv outputs of every computed token: q and k to shared memory, v (a bf16 value
// already, stored exactly) to the step scratch.
template <int K, bool kTree>
__device__ void prep_conv(const PrepBlock<kTree>& b, const PrepShared& sh, int total, int q,
                          int ch) {
  const DevicePool& p = b.j.p;
  const int c = 2 * q;
  float taps[2][kConvWidth];  // taps once per channel
  const float* taps_src = p.conv_taps + (int64_t{b.j.layer} * p.conv_dim() + ch) * kConvWidth;
#pragma unroll
  for (int t = 0; t < 2 * kConvWidth; ++t)
    taps[t / kConvWidth][t % kConvWidth] = taps_src[t];
  for (int j = b.j.stored_tokens(); j < total; ++j) {
    int cols[kConvWidth];
    b.j.template tap_columns<kConvWidth, kTree>(j, cols);
    float in[2][kConvWidth];
#pragma unroll
    for (int t = 0; t < kConvWidth; ++t) {
      const uint32_t w = sh.hist[cols[t] * b.pairs + q];
      in[0][t] = num::bf16_to_float(bf16_bits(w & 0xFFFFu));
      in[1][t] = num::bf16_to_float(bf16_bits(w >> 16));
    }
    const float lo = num::conv_channel(in[0], taps[0], kConvWidth);
    const float hi = num::conv_channel(in[1], taps[1], kConvWidth);
    if (c < 2 * K) {
      *reinterpret_cast<float2*>(sh.qk + j * 2 * K + c) = make_float2(lo, hi);
    } else {
      const int64_t v_index =
          b.j.token_index(j) * p.HV * K + int64_t{b.h} * b.ratio * K + (c - 2 * K);
      *reinterpret_cast<uint32_t*>(b.j.L.step_v + v_index) =
          pack_pair(num::bf16_from_float(lo), num::bf16_from_float(hi));
    }
  }
}

// Everything of one channel pair, by the thread that owns it: no barrier between the steps.
template <int K, bool kTree>
__device__ void prep_channels(const PrepBlock<kTree>& b, const PrepShared& sh, int total) {
  const SeqJob& job = b.j.job;
  for (int q = int(threadIdx.x); q < b.pairs; q += blockDim.x) {
    const int ch = b.channel(2 * q);
    if (job.from_carry) {
      prep_load_window(b.j.carry_conv_at(ch), kWc, sh, b.pairs, q);
    } else {
      const bf16_bits* row =
          job.from_zero ? nullptr : b.j.conv_at(job.from_conv_row, ch, job.from_conv_offset);
      prep_load_window(row, b.j.p.conv_cols, sh, b.pairs, q);
    }
    prep_stage(b, sh, total, q, ch);
    prep_windows(b, sh, total, q, ch);
    prep_conv<K, kTree>(b, sh, total, q, ch);
  }
}

// Per value head and computed token: A decays then beta (gdn_gates' two functions; A = K for
// KDA), from inputs generated here.
template <bool kTree>
__device__ void prep_gates(const PrepBlock<kTree>& b, const PrepShared& sh, int total) {
  const DevicePool& p = b.j.p;
  const int A = p.A, per_token = b.ratio * (A + 1);
  for (int g = b.j.stored_tokens() * per_token + int(threadIdx.x); g < per_token * total;
       g += blockDim.x) {
    const int j = g / per_token, r = g % per_token / (A + 1), i = g % (A + 1);
    const uint32_t hv = uint32_t(b.h * b.ratio + r);
    const int pi = b.j.layer * p.HV + int(hv);
    const num::TokenCoord coord = b.j.template coord<kTree>(j);
    float gate;
    if (i < A) {
      const float a = num::bf16_to_float(num::gen_gate_a(coord, p.model.head_entry(hv * A + i, A)));
      gate = num::gated_decay(a, p.a_log[pi], p.dt_bias[int64_t{pi} * A + i]);
      if (uint8_t* out = sh.out[j]) p.token.decay(out, int(hv))[i] = gate;
    } else {
      gate = num::sigmoid_f32(num::bf16_to_float(num::gen_gate_b(coord, p.model.value_head(hv))));
    }
    b.j.L.step_gates[(b.j.token_index(j) * p.HV + hv) * (A + 1) + i] = gate;
  }
}

// The q and k norm denominators of every computed token, 8 threads per norm: thread c of a group of
// 8 consecutive lanes sums chain c, and an xor butterfly over the lane's low 3 bits adds the chains
// in combine_chains' tree (chain bit k is lane bit k), as l2_norm_denominator does.
template <int K, bool kTree>
__device__ void prep_norms(const PrepBlock<kTree>& b, const PrepShared& sh, int total) {
  static_assert(kPrepThreads % 32 == 0 && num::kChains == 8, "norm groups fill warps");
  constexpr int kLen = K / num::kChains;
  const int count = 2 * total * num::kChains;
  // Every lane of a warp shuffles; groups of 8 lanes stay aligned (the start is a multiple of 16).
  for (int base = 2 * b.j.stored_tokens() * num::kChains; base < count; base += blockDim.x) {
    const int idx = base + int(threadIdx.x), norm = idx / num::kChains, c = idx % num::kChains;
    const bool active = idx < count;
    float sum =
        active ? num::sum_of_squares(sh.qk + (norm >> 1) * 2 * K + (norm & 1) * K + c * kLen, kLen)
               : 0.0f;
#pragma unroll
    for (int bit = 1; bit < num::kChains; bit <<= 1)
      sum = num::fadd(sum, __shfl_xor_sync(0xFFFFFFFFu, sum, bit));
    if (active && c == 0) sh.denom[norm] = num::norm_from_sum(sum);
  }
}

// q_hat and k_hat of every computed token -> the step scratch (k_hat to the payload too).
template <int K, bool kTree>
__device__ void prep_normalize(const PrepBlock<kTree>& b, const PrepShared& sh, int total) {
  const DevicePool& p = b.j.p;
  for (int idx = b.j.stored_tokens() * 2 * K + int(threadIdx.x); idx < 2 * K * total;
       idx += blockDim.x) {
    const int j = idx / (2 * K), c = idx % (2 * K);
    const float x = sh.qk[idx];
    const float y = c < K ? num::normalize_query(x, sh.denom[2 * j], p.q_scale)
                          : num::normalize_key(x, sh.denom[2 * j + 1]);
    b.j.L.step_qk[(b.j.token_index(j) * p.H + b.h) * 2 * K + c] = y;
    if (uint8_t* out = sh.out[j]; out && c >= K) p.token.k_hat(out, b.h)[c - K] = y;
  }
}

template <int K, bool kTree>
__global__ void __launch_bounds__(kPrepThreads, kPrepBlocksPerSm)
    prep_kernel(const __grid_constant__ DevicePool p, const __grid_constant__ SequenceLaunch L,
                const __grid_constant__ PrepLayout lay) {
  // Let the recurrence grid start loading states as soon as every prep block runs (it waits
  // for this grid's completion before it reads the step scratch).
  asm volatile("griddepcontrol.launch_dependents;");
  const int task = blockIdx.z;
  const SeqJob& job = L.jobs[task];
  if (!job_runs(p, job)) return;
  const PrepBlock<kTree> b{
      {p, L, job, task, int(blockIdx.y)}, int(blockIdx.x), lay.ratio, K, lay.pairs()};
  const PrepShared sh = carve_prep(lay, K);
  const int total = b.j.total_tokens();
  prep_tokens(b, sh, total);
  __syncthreads();
  prep_channels<K, kTree>(b, sh, total);
  prep_gates(b, sh, total);
  __syncthreads();
  prep_norms<K, kTree>(b, sh, total);
  __syncthreads();
  prep_normalize<K, kTree>(b, sh, total);
}

// ---- recurrence

using Pair = num::Lanes<2>;  // the two V columns of a thread

// kKda: Kimi Delta Attention, a decay per state row (staged like k_hat), else one per head.
template <int K, bool kKda = false>
struct Recur {
  static constexpr int kRows = K / num::kChains;          // state rows of a thread (one chain)
  static constexpr int kPairs = K / 2;                    // column pairs of a head (V = K)
  static constexpr int kThreads = kPairs * num::kChains;  // 512 for K = 128
  static constexpr int kGroup = kRows < 4 ? kRows : 4;    // k_hat/q_hat values per shared load
  // A warp's 8 chains read 8 different runs of q_hat and k_hat: 4 floats of padding after each
  // chain's run put them in different banks (where a run is a whole number of 16-byte loads).
  static constexpr int kPad = kRows % 4 == 0 ? 4 : 0;
  static constexpr int kRun = kRows + kPad;            // one chain's rows of q_hat or k_hat
  static constexpr int kPadded = num::kChains * kRun;  // q_hat or k_hat, padded
  // Per token in shared memory, fp32: q_hat and k_hat (padded), v [V] (a stored token's delta),
  // alpha (GDN's one), beta, 2 pad, and with kKda the row decays (padded as k_hat).
  static constexpr int kQ = 0, kK = kPadded, kV = 2 * kPadded, kGates = 2 * kPadded + K;
  static constexpr int kAlpha = kGates + 4;
  static constexpr int kTokenFloats = kAlpha + (kKda ? kPadded : 0);
  // Dynamic shared memory: a chunk's tokens, the outputs o and deltas of its computed tokens
  // (fp32: written to global memory after the chunk, so that their addresses and the bf16
  // rounding of o stay out of the token loop, which runs at the register cap), the chunk's
  // store mask (one word, padded to 16 bytes).
  static constexpr int kSharedFloats = kRecurChunk * (kTokenFloats + 2 * K) + 4;
  static_assert(num::kChains == 8 && K % 16 == 0 && kPairs % 4 == 0, "8 chains of 4 pairs a warp");
};

// Float i of a q_hat or k_hat run of K in its padded place.
template <int K>
__device__ __forceinline__ int padded(int i) {
  using R = Recur<K>;
  return i + i / R::kRows * R::kPad;
}

// A column's 8 chains are 8 lanes of one warp (recur_lane), so m's and o's partials combine by
// shuffles, and the warp's state accesses are whole lines of the device layout.
using Lane = RecurLane;

// combine_chains over the 8 lanes of a column pair: an xor butterfly over the chain bits is
// its tree (gdn_step.h), and every lane ends with the combined value.
__device__ __forceinline__ Pair combine_lanes(Pair x) {
#pragma unroll
  for (int bit = 1; bit < num::kChains; bit <<= 1) {
#pragma unroll
    for (int i = 0; i < 2; ++i)
      x.v[i] = num::fadd(x.v[i], __shfl_xor_sync(0xFFFFFFFFu, x.v[i], bit));
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

// The thread's units of one head stored as Elem (ssm_layout.h): unit g holds kUnitRows rows of
// its two columns, widened to fp32 (exact) on load and rounded to Elem on store.
template <int K, class Elem>
struct HeadUnits {
  static constexpr int kUnitRows = ssm_unit_rows(K, sizeof(Elem));
  static constexpr int kUnits = Recur<K>::kRows / kUnitRows;
  static constexpr int kWords = kUnitRows * 2 * int(sizeof(Elem)) / 4;  // 32-bit words a unit
  static_assert(kWords == 1 || kWords == 2 || kWords == 4, "a unit is one vector access");

  // Unit g of the thread's chain and pair.
  __device__ static uint32_t* unit(Elem* head, Lane ln, int g) {
    return reinterpret_cast<uint32_t*>(head +
                                       ssm_unit_offset(ln.col0, g, ln.chain, K, sizeof(Elem)));
  }
  __device__ static void load(const uint32_t* src, uint32_t (&w)[kWords]) {
    if constexpr (kWords == 4) {
      const uint4 x = *reinterpret_cast<const uint4*>(src);
      w[0] = x.x, w[1] = x.y, w[2] = x.z, w[3] = x.w;
    } else if constexpr (kWords == 2) {
      const uint2 x = *reinterpret_cast<const uint2*>(src);
      w[0] = x.x, w[1] = x.y;
    } else {
      w[0] = *src;
    }
  }
  __device__ static void store(uint32_t* dst, const uint32_t (&w)[kWords]) {
    if constexpr (kWords == 4) {
      *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
    } else if constexpr (kWords == 2) {
      *reinterpret_cast<uint2*>(dst) = make_uint2(w[0], w[1]);
    } else {
      *dst = w[0];
    }
  }
};

// The thread's state rows (chain * kRows ..) of one [K, K] head stored as Elem.
template <int K, class Elem>
__device__ __forceinline__ void load_rows(const Elem* head, Lane ln, Pair (&s)[Recur<K>::kRows]) {
  using U = HeadUnits<K, Elem>;
#pragma unroll
  for (int g = 0; g < U::kUnits; ++g) {
    uint32_t w[U::kWords];
    U::load(U::unit(const_cast<Elem*>(head), ln, g), w);
    Pair* rows = s + g * U::kUnitRows;
    if constexpr (std::is_same_v<Elem, float>) {
#pragma unroll
      for (int r = 0; r < U::kUnitRows; ++r)
        rows[r] = {{num::bits_float(w[2 * r]), num::bits_float(w[2 * r + 1])}};
    } else {
#pragma unroll
      for (int r = 0; r < U::kUnitRows; ++r)
        rows[r] = {{bf16_lo(w[r]), bf16_hi(w[r])}};
    }
  }
}

__device__ __forceinline__ uint32_t bf16_pair(Pair x) {
  return bf16_pair_bits(x.v[0], x.v[1]);
}

template <int K, class Elem>
__device__ __forceinline__ void store_rows(Elem* head, Lane ln, const Pair (&s)[Recur<K>::kRows]) {
  using U = HeadUnits<K, Elem>;
#pragma unroll
  for (int g = 0; g < U::kUnits; ++g) {
    uint32_t w[U::kWords];
    const Pair* rows = s + g * U::kUnitRows;
    if constexpr (std::is_same_v<Elem, float>) {
#pragma unroll
      for (int r = 0; r < U::kUnitRows; ++r) {
        w[2 * r] = num::float_bits(rows[r].v[0]);
        w[2 * r + 1] = num::float_bits(rows[r].v[1]);
      }
    } else {
#pragma unroll
      for (int r = 0; r < U::kUnitRows; ++r)
        w[r] = bf16_pair(rows[r]);
    }
    U::store(U::unit(head, ln, g), w);
  }
}

template <bool kBf16>
using PoolElem = std::conditional_t<kBf16, bf16_bits, float>;

template <int K, bool kBf16>
__device__ PoolElem<kBf16>* pool_head(const JobView& jv, int row, int hv) {
  return static_cast<PoolElem<kBf16>*>(jv.p.ssm) + jv.ssm_head(row, hv);
}

// One token of the canonical step for the thread's chain and columns (t: the token's vectors in
// shared memory). The chains' partials of m and o combine inside the warp, with no barrier; the
// lane of chain 0 keeps o and delta in `out` ([2, kRecurChunk, K]: o, then delta) for
// chunk_outputs. Storing them here, as soon as they are combined, keeps the token loop within the
// register cap.
// The decays of rows g .. g + kGroup - 1 of the thread's chain: GDN's one for every row
// (`head`, read once per token), or KDA's per row (staged at kAlpha, padded as k_hat).
template <int K, bool kKda>
__device__ __forceinline__ void row_decays(const float* t, Lane ln, int g, float head,
                                           float (&a)[Recur<K>::kGroup]) {
  using R = Recur<K, kKda>;
  if constexpr (kKda) {
    load_shared(t + R::kAlpha + ln.chain * R::kRun + g, a);
  } else {
#pragma unroll
    for (int u = 0; u < R::kGroup; ++u)
      a[u] = head;
  }
}

template <int K, bool kKda>
__device__ __forceinline__ void recur_token(const float* t, Lane ln, Pair (&s)[Recur<K>::kRows],
                                            float* out) {
  using R = Recur<K, kKda>;
  const float* q = t + R::kQ + ln.chain * R::kRun;
  const float* k = t + R::kK + ln.chain * R::kRun;
  const float head_alpha = kKda ? 0.0f : t[R::kGates], beta = t[R::kGates + 1];
  Pair m{};
#pragma unroll
  for (int g = 0; g < R::kRows; g += R::kGroup) {
    float kg[R::kGroup], ag[R::kGroup];
    load_shared(k + g, kg);
    row_decays<K, kKda>(t, ln, g, head_alpha, ag);
#pragma unroll
    for (int u = 0; u < R::kGroup; ++u)
      m = num::decay_project_row(s[g + u], kg[u], ag[u], m);
  }
  const Pair v{{t[R::kV + ln.col0], t[R::kV + ln.col0 + 1]}};
  const Pair delta = num::gdn_delta(v, combine_lanes(m), beta);
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
  o = combine_lanes(o);
  if (ln.chain == 0) {
    *reinterpret_cast<float2*>(out + ln.col0) = make_float2(o.v[0], o.v[1]);
    *reinterpret_cast<float2*>(out + kRecurChunk * K + ln.col0) =
        make_float2(delta.v[0], delta.v[1]);
  }
}

// One token replayed from its stored values (t: alpha, k_hat and delta staged as a computed
// token's alpha, k_hat and v): the state operations of recur_token on the values its verify
// computed, with no reduction.
template <int K, bool kKda>
__device__ __forceinline__ void replay_token(const float* t, Lane ln, Pair (&s)[Recur<K>::kRows]) {
  using R = Recur<K, kKda>;
  const float* k = t + R::kK + ln.chain * R::kRun;
  const float head_alpha = kKda ? 0.0f : t[R::kGates];
  const Pair delta{{t[R::kV + ln.col0], t[R::kV + ln.col0 + 1]}};
#pragma unroll
  for (int g = 0; g < R::kRows; g += R::kGroup) {
    float kg[R::kGroup], ag[R::kGroup];
    load_shared(k + g, kg);
    row_decays<K, kKda>(t, ln, g, head_alpha, ag);
#pragma unroll
    for (int u = 0; u < R::kGroup; ++u)
      num::replay_row(s[g + u], kg[u], ag[u], delta);
  }
}

// Output of new token jn for columns col0, col0+1 of head hv, as a bf16 pair.
__device__ void store_output(const JobView& jv, int hv, int jn, int col0, uint32_t o) {
  if (!jv.L.outputs) return;
  const DevicePool& p = jv.p;
  const int64_t idx =
      (((int64_t{jv.task} * jv.L.output_tokens + jn) * p.layers + jv.layer) * p.HV + hv) * p.V;
  *reinterpret_cast<uint32_t*>(jv.L.outputs + idx + col0) = o;
}

// After a chunk (and a block barrier): what its computed new tokens leave in global memory,
// kept by the token loop in `outs` ([2, chunk token, K] fp32: o, then delta), one (token,
// column pair) per thread: the output, and in payload mode delta beside the token's x, alpha
// and k_hat (prep's).
template <int K, bool kTree>
__device__ void chunk_outputs(const JobView& jv, int hv, int c0, int n, const float* outs) {
  using R = Recur<K>;
  const bool to_payload = jv.job.payload_out_slot != kNoRow;
  if (!jv.L.outputs && !to_payload) return;
  for (int idx = threadIdx.x; idx < n * R::kPairs; idx += blockDim.x) {
    const int jl = idx / R::kPairs, col0 = 2 * (idx % R::kPairs);
    const uint32_t step = jv.template step<kTree>(c0 + jl);
    const int token = int(step & 0xFFFFu), jn = token - jv.job.pending_count;
    if (jn < 0 || token < jv.stored_tokens() || (kTree && (step & kStepSilent))) continue;
    const float* o = outs + jl * K + col0;
    store_output(jv, hv, jn, col0, bf16_pair_bits(o[0], o[1]));
    if (to_payload) {
      const float* delta = o + kRecurChunk * K;
      float* dst = jv.p.token.delta(jv.payload_out(jn), hv) + col0;  // 4-byte aligned (any HV)
      dst[0] = delta[0];
      dst[1] = delta[1];
    }
  }
}

// The sequence token of recurrence step e (JobView::step).
template <bool kTree>
__device__ __forceinline__ int step_token(const JobView& jv, int e) {
  return int(jv.template step<kTree>(e) & 0xFFFFu);
}

// Global -> shared without registers (cp.async, LDGSTS): the copies of a chunk's tokens are all
// in flight at once, and the state the thread holds in registers keeps them.
template <int kBytes>
__device__ __forceinline__ void copy_async(float* dst, const float* src) {
  const auto shared = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  if constexpr (kBytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(shared), "l"(src) : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;" ::"r"(shared), "l"(src), "n"(kBytes)
                 : "memory");
  }
}
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_all;" ::: "memory");
}

// The fp32 vectors of steps c0 .. c0+n-1 of head (h, hv), kUnit floats per copy (never across
// a chain's run): a computed token's q_hat and k_hat from the step scratch ([2K], to kQ and kK,
// padded), a stored token's k_hat and delta from its payload slot (to kK, padded, and kV).
template <int K, bool kKda, bool kTree, int kUnit>
__device__ void recur_stage_vectors(const JobView& jv, int h, int hv, int c0, int n, float* tok) {
  using R = Recur<K, kKda>;
  static_assert(R::kPad == 0 || R::kRows % kUnit == 0, "a copy stays in one chain's run");
  constexpr int kUnits = 2 * K / kUnit;  // copies per token
  const DevicePool& p = jv.p;
  const int stored = jv.stored_tokens();
  for (int u = threadIdx.x; u < n * kUnits; u += blockDim.x) {
    const int j = u / kUnits, i = (u % kUnits) * kUnit;  // token of the chunk, float of its run
    const int token = step_token<kTree>(jv, c0 + j);
    float* dst = tok + j * R::kTokenFloats;
    if (token < stored) {
      const uint8_t* src = jv.stored_token(token);
      if (i < K) {
        copy_async<4 * kUnit>(dst + R::kK + padded<K>(i), p.token.k_hat(src, h) + i);
      } else {
        copy_async<4 * kUnit>(dst + R::kV + (i - K), p.token.delta(src, hv) + (i - K));
      }
    } else {
      const int at = i < K ? R::kQ + padded<K>(i) : R::kK + padded<K>(i - K);
      copy_async<4 * kUnit>(dst + at, jv.L.step_qk + (jv.token_index(token) * p.H + h) * 2 * K + i);
    }
  }
}

// The tokens of steps c0 .. c0+n-1 of head (h, hv) -> shared, in Recur<K, kKda>'s token layout:
// a computed token's from the step scratch, a stored token's alpha, k_hat and delta from its
// payload slot (into the alpha, k_hat and v places; its q_hat and beta are not needed). The
// fp32 vectors go by cp.async, 16 bytes a copy where the payload's layout keeps them aligned
// (HV a multiple of 4, payload_token.h); the caller waits (copy_async_wait) before the barrier.
// With kKda the K decays of a token go to kAlpha (padded as k_hat), by plain loads.
template <int K, bool kKda, bool kTree>
__device__ void recur_stage(const JobView& jv, int h, int hv, int c0, int n, float* tok) {
  using R = Recur<K, kKda>;
  const DevicePool& p = jv.p;
  if (p.HV % 4 == 0) {
    recur_stage_vectors<K, kKda, kTree, 4>(jv, h, hv, c0, n, tok);
  } else {
    recur_stage_vectors<K, kKda, kTree, 1>(jv, h, hv, c0, n, tok);
  }
  const int stored = jv.stored_tokens();
  for (int idx = threadIdx.x; idx < n * K; idx += blockDim.x) {
    const int j = idx / K, c = idx % K, token = step_token<kTree>(jv, c0 + j);
    if (token >= stored)
      tok[j * R::kTokenFloats + R::kV + c] =
          num::bf16_to_float(jv.L.step_v[(jv.token_index(token) * p.HV + hv) * K + c]);
  }
  // The gates: A decays (GDN's one at kGates, KDA's K at kAlpha), and a computed token's beta.
  const int A = kKda ? K : 1;
  for (int idx = threadIdx.x; idx < (A + 1) * n; idx += blockDim.x) {
    const int j = idx / (A + 1), i = idx % (A + 1), token = step_token<kTree>(jv, c0 + j);
    const int at = i == A ? R::kGates + 1 : kKda ? R::kAlpha + padded<K>(i) : R::kGates;
    float* dst = tok + j * R::kTokenFloats + at;
    if (token < stored) {
      if (i < A) *dst = p.token.decay(jv.stored_token(token), hv)[i];
      continue;
    }
    *dst = jv.L.step_gates[(jv.token_index(token) * p.HV + hv) * (A + 1) + i];
  }
}

// f(row) for each pool row that takes the state after sequence token j: the pending replay's
// commit (after the last pending token), the window mode's SSM row of new token j, the
// full-state writes. The only enumeration of them, for the stores and the chunk's store mask.
template <class F>
__device__ __forceinline__ void for_each_state_row(const JobView& jv, int j, F&& f) {
  const SeqJob& job = jv.job;
  const int jn = j - job.pending_count;  // -1: the last pending token
  if (jn < -1) return;
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
    if (row != kNoRow) f(row);
  }
}

__device__ __forceinline__ bool rounds_after(const SeqJob& job, int j) {
  return j < 32 && ((job.round_after >> j) & 1u) != 0;
}
__device__ __forceinline__ bool to_carry_after(const JobView& jv, int j) {
  return jv.job.to_carry && j == jv.total_tokens() - 1;
}

// The states the job asks for after sequence token j, stored from the thread's registers: the
// rows of for_each_state_row (the pending commit after rounding the state to the pool dtype,
// which is what the tokens after it continue from) and the carry. One store site for all pool
// rows keeps the unrolled stores (and their registers) in one place.
template <int K, bool kBf16>
__device__ void store_states(const JobView& jv, int hv, int j, Lane ln,
                             Pair (&s)[Recur<K>::kRows]) {
  if constexpr (kBf16) {
    if (rounds_after(jv.job, j)) {
#pragma unroll
      for (int r = 0; r < Recur<K>::kRows; ++r) {
        const uint32_t w = bf16_pair(s[r]);
        s[r] = {{bf16_lo(w), bf16_hi(w)}};
      }
    }
  }
  for_each_state_row(jv, j,
                     [&](int32_t row) { store_rows<K>(pool_head<K, kBf16>(jv, row, hv), ln, s); });
  if (to_carry_after(jv, j)) store_rows<K>(jv.carry_ssm_head(hv), ln, s);
}

// The chunk's store mask: bit jl set where store_states acts after step c0 + jl (lane jl of
// warp 0 decides), so that the tokens after which nothing is stored, most of a verify's, skip
// the search. It lives in shared memory, as the token loop runs at the register cap.
template <bool kBf16, bool kTree>
__device__ void chunk_store_mask(const JobView& jv, int c0, int n, uint32_t& mask) {
  if (threadIdx.x >= 32) return;
  const int lane = int(threadIdx.x), j = step_token<kTree>(jv, c0 + lane);
  bool stores = false;
  if (lane < n) {
    stores = (kBf16 && rounds_after(jv.job, j)) || to_carry_after(jv, j);
    for_each_state_row(jv, j, [&](int32_t) { stores = true; });
  }
  const uint32_t bits = __ballot_sync(0xFFFFFFFFu, stores);
  if (lane == 0) mask = bits;
}

// kMask: the launch's jobs store sparsely (kernels.h); the chunk's store mask skips the search.
// kKda: a decay per state row (Kimi Delta Attention).
template <int K, bool kKda, bool kBf16, bool kTree, bool kMask>
__global__ void __launch_bounds__(Recur<K, kKda>::kThreads, K == 128 ? 2 : 8)
    recur_kernel(const __grid_constant__ DevicePool p, const __grid_constant__ SequenceLaunch L) {
  using R = Recur<K, kKda>;
  const int task = blockIdx.z, hv = blockIdx.x;
  const SeqJob& job = L.jobs[task];
  const JobView jv{p, L, job, task, int(blockIdx.y)};
  const Lane ln = recur_lane(threadIdx.x);
  if (ln.chain == 0) {
    for (int jn = job_runs(p, job) ? job.new_count : 0; jn < L.output_tokens; ++jn)
      store_output(jv, hv, jn, ln.col0, 0u);
  }
  if (!job_runs(p, job)) return;

  extern __shared__ float4 recur_raw[];
  float* tok = reinterpret_cast<float*>(recur_raw);   // [kRecurChunk, kTokenFloats] fp32
  float* outs = tok + kRecurChunk * R::kTokenFloats;  // [2, kRecurChunk, K] fp32: o, delta
  uint32_t& chunk_stores = *reinterpret_cast<uint32_t*>(outs + 2 * kRecurChunk * K);
  const int steps = jv.template steps<kTree>();

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
  // Launched dependent on the prep grid (programmatic dependent launch, chains only): the state
  // loads above overlap the end of prep; its writes are visible after this wait (which returns at
  // once for a tree launch, queued after prep). Nothing before the wait touches what prep writes
  // (conv windows, payload, step scratch).
  const int h = hv / (p.HV / p.H);
  asm volatile("griddepcontrol.wait;" ::: "memory");
  const int stored = jv.stored_tokens();  // a prefix of the sequence
  // A tree's restarts (backends/sequence_job.h) reload the base state, which each thread keeps
  // for its own rows in the job's carry: written and read by the same thread, no barrier.
  float* base = kTree && job.stash_base ? jv.carry_ssm_head(hv) : nullptr;
  if (kTree && base && job.pending_count == 0) store_rows<K>(base, ln, s);
  for (int c0 = 0; c0 < steps; c0 += kRecurChunk) {
    const int n = min(kRecurChunk, steps - c0);
    recur_stage<K, kKda, kTree>(jv, h, hv, c0, n, tok);
    if constexpr (kMask) chunk_store_mask<kBf16, kTree>(jv, c0, n, chunk_stores);
    copy_async_wait();
    __syncthreads();
    for (int jl = 0; jl < n; ++jl) {
      const uint32_t step = jv.template step<kTree>(c0 + jl);
      const int j = int(step & 0xFFFFu);
      if constexpr (kTree) {
        if (step & kStepRestart) load_rows<K>(static_cast<const float*>(base), ln, s);
        if (step & kStepFromRow) {  // the parent's state, as this thread stored it
          const int node = int(step >> kStepNodeShift) & 0x7F;
          int32_t row = kNoRow;
          for (int d = 0; d < job.write_count; ++d) {
            const SeqWrite wr = L.writes[job.first_write + d];
            if (wr.after_tokens == node + 1) row = wr.row;
          }
          load_rows<K>(pool_head<K, kBf16>(jv, row, hv), ln, s);
        }
      }
      if (j < stored) {
        replay_token<K, kKda>(tok + jl * R::kTokenFloats, ln, s);
      } else {
        recur_token<K, kKda>(tok + jl * R::kTokenFloats, ln, s, outs + jl * K);
        if (kTree && (step & kStepSilent)) continue;
      }
      if (!kMask || ((chunk_stores >> jl) & 1u)) store_states<K, kBf16>(jv, hv, j, ln, s);
      if constexpr (kTree) {
        if (base && j == job.pending_count - 1) store_rows<K>(base, ln, s);
      }
    }
    __syncthreads();  // the chunk's tokens are read and its outputs kept
    chunk_outputs<K, kTree>(jv, hv, c0, n, outs);
  }
}

// The most dynamic shared memory one block may take on this device.
int opt_in_shared_memory() {
  static const int bytes = [] {
    int device = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    return optin;
  }();
  return bytes;
}

// Lets `kernel` take up to the device's opt-in maximum of dynamic shared memory, once. The cap
// is a property of the function, shared by every thread and backend of the process: raising it
// per launch to that launch's size races with another thread launching more (the simulator
// runs CUDA lanes of different strategies at once), which fails that launch.
template <auto kernel>
void allow_shared_memory() {
  static const bool once = [] {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    opt_in_shared_memory()));
    return true;
  }();
  (void)once;
}

template <int K, bool kKda, bool kBf16, bool kTree, bool kMask>
void launch_recur(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  // A tree's prep (every node's conv, norms and gates: 565 us at batch 64 on an H100) is long
  // enough that recurrence blocks resident early, waiting for it, slow it down more than their
  // state loads gain: with every launch serialised (CUDA_LAUNCH_BLOCKING) the tree step took
  // 4129 us (bf16) and 4467 us (fp32) against 4469 and 4511 us launched dependent; chains gain
  // 12 to 17 us from the overlap (docs/performance.md).
  cudaLaunchAttribute dependent;
  dependent.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  dependent.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(p.HV, p.layers, L.job_count);
  config.blockDim = dim3(Recur<K, kKda>::kThreads);
  const size_t smem = Recur<K, kKda>::kSharedFloats * sizeof(float);
  allow_shared_memory<recur_kernel<K, kKda, kBf16, kTree, kMask>>();
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &dependent;
  config.numAttrs = kTree ? 0 : 1;
  CUDA_CHECK(cudaLaunchKernelEx(&config, recur_kernel<K, kKda, kBf16, kTree, kMask>, p, L));
  CUDA_CHECK_LAUNCH();
}

// The recurrence kernel of the pool's dtype and recurrence (one decay per head, or per row).
template <int K, bool kTree, bool kMask>
void launch_recur_dtype(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  if (p.A > 1) {
    SPECSTATE_ASSERT(p.A == K, "a decay per state row");
    if (p.ssm_bf16) return launch_recur<K, true, true, kTree, kMask>(p, L, stream);
    return launch_recur<K, true, false, kTree, kMask>(p, L, stream);
  }
  if (p.ssm_bf16) return launch_recur<K, false, true, kTree, kMask>(p, L, stream);
  launch_recur<K, false, false, kTree, kMask>(p, L, stream);
}

PrepLayout prep_layout(int K, int ratio, int tokens) {
  PrepLayout lay;
  lay.ratio = ratio;
  lay.nch = 2 * K + ratio * K;
  lay.tokens = std::max(1, tokens);
  lay.hist_cols = kWc + lay.tokens;
  return lay;
}

template <int K, bool kTree>
void launch_step_k(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  const PrepLayout lay = prep_layout(K, p.HV / p.H, L.max_tokens);
  const size_t smem = lay.bytes(K);
  SPECSTATE_ASSERT(smem <= size_t(opt_in_shared_memory()),
                   "the prep kernel's shared memory fits a block (a tree's nodes and history)");
  allow_shared_memory<prep_kernel<K, kTree>>();
  prep_kernel<K, kTree>
      <<<dim3(p.H, p.layers, L.job_count), kPrepThreads, smem, stream>>>(p, L, lay);
  CUDA_CHECK_LAUNCH();
  if constexpr (!kTree) {  // trees store after every node: their launches run without the mask
    if (L.sparse_stores) return launch_recur_dtype<K, false, true>(p, L, stream);
  }
  launch_recur_dtype<K, kTree, false>(p, L, stream);
}

}  // namespace

bool step_kernels_support(int32_t K, int32_t V, int32_t W) {
  return (K == 16 || K == 128) && V == K && W == kConvWidth;
}

size_t step_shared_bytes(int32_t K, int32_t ratio, int32_t tokens) {
  return prep_layout(K, ratio, tokens).bytes(K);
}

size_t step_shared_limit() {
  return size_t(opt_in_shared_memory());
}

void launch_step(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  SPECSTATE_ASSERT(L.max_tokens <= kStepMaxTreeTokens,
                   "a step launch runs at most kStepMaxTokens (kStepMaxTreeTokens with a tree)");
  if (L.job_count == 0) return;
  switch (p.K) {
    case 128:
      return L.tree ? launch_step_k<128, true>(p, L, stream)
                    : launch_step_k<128, false>(p, L, stream);
    case 16:
      return L.tree ? launch_step_k<16, true>(p, L, stream)
                    : launch_step_k<16, false>(p, L, stream);
  }
  SPECSTATE_ASSERT(false, "the backend refuses geometries the step kernels are not built for");
}

}  // namespace specstate::cuda
