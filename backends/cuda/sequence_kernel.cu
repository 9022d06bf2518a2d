// The sequence kernel: conv, norms, gates and the Gated DeltaNet recurrence of
// core/numerics/gdn_step.h for one value head of one layer of one job per block.
//
// Thread `col` owns column `col` of the head's [K, V] state and keeps its K values in registers
// for the whole job, so the state is read once and each requested state is written once, with
// consecutive threads touching consecutive addresses. Per chunk of up to 16 tokens the block
// first stages the token inputs and the conv history in shared memory, computes the conv outputs
// of its 2K + V channels (q and k of its key head, v of its value head), the norms and the gates;
// then every thread runs the canonical column step token by token.
//
// The q/k conv channels of a key head are shared by HV/H value-head blocks. All of them read the
// source window, but only one may write the new windows (the destination may be the source row):
// after reading, each block increments a per-(job, layer, key head) counter, and the last to
// arrive is the only one that writes q/k conv windows and q/k payload channels.
#include "backends/cuda/column_math.cuh"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernels.h"
#include "core/numerics/gdn_step.h"
#include "core/numerics/inputs.h"

namespace specstate::cuda {
namespace {

using num::bf16_bits;

constexpr int kMaxChunk = 16;       // tokens per shared-memory chunk
constexpr int kConvWidth = 4;       // W (every preset); a template constant keeps `in` in registers
constexpr int kBlockThreads = 128;  // V <= 128: one thread per column

// Dynamic shared memory of one block; nch = 2K + V channels, C = chunk tokens.
struct SharedLayout {
  int nch, hist_cols, chunk, k;
  // [C, nch + K]: conv outputs, then a second copy of k_hat (see column_step)
  __host__ __device__ size_t act_stride() const { return size_t(nch) + k; }
  __host__ __device__ size_t act_floats() const { return size_t(chunk) * act_stride(); }
  __host__ __device__ size_t bytes() const {
    return (act_floats() + 4 * size_t(chunk)) * sizeof(float) +                // act, denom, gates
           (size_t(nch) * hist_cols + 2 * size_t(chunk)) * sizeof(bf16_bits);  // hist, ab
  }
};

struct Shared {
  float* act;       // [chunk, nch] fp32: conv outputs; q, k normalised in place
  float* denom;     // [chunk, 2] fp32: q and k norm denominators
  float* gates;     // [chunk, 2] fp32: alpha, beta
  bf16_bits* hist;  // [nch, hist_cols] bf16: W-1 window columns, then the chunk's inputs
  bf16_bits* ab;    // [chunk, 2] bf16: gate inputs a, b of this value head
};

__device__ Shared carve_shared(const SharedLayout& lay) {
  extern __shared__ float4 shared_raw[];
  Shared s;
  s.act = reinterpret_cast<float*>(shared_raw);
  s.denom = s.act + lay.act_floats();
  s.gates = s.denom + 2 * lay.chunk;
  s.hist = reinterpret_cast<bf16_bits*>(s.gates + 2 * lay.chunk);
  s.ab = s.hist + size_t(lay.nch) * lay.hist_cols;
  return s;
}

// What one block works on, and the addressing of its tensors.
struct Block {
  const DevicePool& p;
  const SeqJob& job;
  int task, layer, hv, h, K, V, wc, nch;
  bool qk_writer;

  // Conv channel of local channel c: [q of key head h | k of key head h | v of value head hv].
  __device__ int channel(int c) const {
    if (c < K) return h * K + c;
    if (c < 2 * K) return p.H * K + h * K + (c - K);
    return 2 * p.H * K + hv * V + (c - 2 * K);
  }
  __device__ bool owns(int c) const { return c >= 2 * K || qk_writer; }
  __device__ int act_stride() const { return nch + K; }
  __device__ bf16_bits* conv_at(int row, int ch, int col) const {
    return p.conv + ((int64_t{layer} * p.rows + row) * p.conv_dim() + ch) * p.conv_cols + col;
  }
  __device__ bf16_bits* payload_at(int slot, int token) const {
    return p.payload + ((int64_t{layer} * p.slots + slot) * p.payload_tokens + token) *
                           p.payload_token_elements();
  }
  __device__ int64_t ssm_head(int row) const {  // element offset of [row, hv, 0, 0] in this layer
    return (int64_t{layer} * p.rows + row) * p.ssm_row_elements() + int64_t{hv} * K * V;
  }
  // Token inputs of sequence token j (pending tokens first): payload slot or generator.
  __device__ const bf16_bits* payload_token(int j) const {
    if (j < job.pending_count) return payload_at(job.pending_slot, j);
    if (job.in_payload_slot != kNoRow)
      return payload_at(job.in_payload_slot, j - job.pending_count);
    return nullptr;
  }
  __device__ num::TokenCoord coord(int j) const {
    return {p.seed, job.request_id, uint64_t(job.first_position + (j - job.pending_count)),
            uint32_t(layer)};
  }
};

template <int K, bool kBf16>
__device__ void load_state(const Block& b, int col, float (&s)[K]) {
  if (b.job.from_zero) {
#pragma unroll
    for (int i = 0; i < K; ++i)
      s[i] = 0.0f;
    return;
  }
  const size_t elem = kBf16 ? 2 : 4;
  load_column<K, kBf16>(static_cast<const char*>(b.p.ssm) + b.ssm_head(b.job.from_ssm_row) * elem,
                        col, s);
}

template <int K, bool kBf16>
__device__ void store_ssm(const Block& b, int row, int col, const float (&s)[K]) {
  const size_t elem = kBf16 ? 2 : 4;
  store_column<K, kBf16>(static_cast<char*>(b.p.ssm) + b.ssm_head(row) * elem, col, s);
}

// The window after chunk token jl is hist columns jl+1 .. jl+W-1. In window mode the rewrite of
// the source conv row covers columns 0..W-2 last, as on the CPU, so writes there are skipped.
__device__ void store_window(const Block& b, const Shared& sh, int hist_cols, int row, int jl) {
  if (b.job.rewrite_wide_conv && row == b.job.from_conv_row) return;
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
    if (!b.owns(c)) continue;
    bf16_bits* dst = b.conv_at(row, b.channel(c), 0);
    for (int t = 0; t < b.wc; ++t)
      dst[t] = sh.hist[c * hist_cols + jl + 1 + t];
  }
}

// Reads the source window (zeros for a zero start) into hist columns 0..W-2.
__device__ void load_window(const Block& b, const Shared& sh, int hist_cols) {
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
    const bf16_bits* src =
        b.job.from_zero ? nullptr
                        : b.conv_at(b.job.from_conv_row, b.channel(c), b.job.from_conv_offset);
    for (int t = 0; t < b.wc; ++t)
      sh.hist[c * hist_cols + t] = src ? src[t] : bf16_bits{0};
  }
}

// Called after every thread's window reads have landed in shared memory.
__device__ bool elect_qk_writer(const DevicePool& p, const SequenceLaunch& L, int task, int layer,
                                int h) {
  const int ratio = p.HV / p.H;
  if (ratio == 1) return true;
  __shared__ int writer;
  if (threadIdx.x == 0) {
    __threadfence();
    unsigned* counter = L.qk_counters + (int64_t{task} * p.layers + layer) * p.H + h;
    const unsigned arrived = atomicAdd(counter, 1u);
    writer = arrived == unsigned(ratio - 1);
    if (writer) atomicExch(counter, 0u);  // every sharer has arrived: ready for the next launch
  }
  __syncthreads();
  return writer != 0;
}

// Inputs of chunk tokens c0 .. c0+n-1 -> hist columns W-1 .. W-2+n and ab; payload-mode copies.
__device__ void stage_inputs(const Block& b, const Shared& sh, int hist_cols, int c0, int n) {
  const int pending = b.job.pending_count;
  const bool to_payload = b.job.payload_out_slot != kNoRow;
  const int C = b.p.conv_dim();
#pragma unroll 4
  for (int idx = threadIdx.x; idx < b.nch * n; idx += blockDim.x) {
    const int c = idx % b.nch, jl = idx / b.nch, j = c0 + jl, ch = b.channel(c);
    const bf16_bits* src = b.payload_token(j);
    const bf16_bits x = src ? src[ch] : num::gen_conv_input(b.coord(j), ch);
    sh.hist[c * hist_cols + b.wc + jl] = x;
    if (to_payload && j >= pending && b.owns(c)) {
      b.payload_at(b.job.payload_out_slot, j - pending)[ch] = x;
    }
  }
  for (int jl = threadIdx.x; jl < n; jl += blockDim.x) {
    const int j = c0 + jl;
    const bf16_bits* src = b.payload_token(j);
    const bf16_bits a = src ? src[C + b.hv] : num::gen_gate_a(b.coord(j), b.hv);
    const bf16_bits bb = src ? src[C + b.p.HV + b.hv] : num::gen_gate_b(b.coord(j), b.hv);
    sh.ab[2 * jl] = a;
    sh.ab[2 * jl + 1] = bb;
    if (to_payload && j >= pending) {
      bf16_bits* dst = b.payload_at(b.job.payload_out_slot, j - pending);
      dst[C + b.hv] = a;
      dst[C + b.p.HV + b.hv] = bb;
    }
  }
}

// Window mode: sequence history column g >= pending+1 goes to conv column g - pending - 1 of the
// source conv row, so the window after new token j starts at column j.
__device__ void rewrite_wide_conv(const Block& b, const Shared& sh, int hist_cols, int c0, int n) {
  const int first_local = c0 == 0 ? 0 : b.wc;  // carried columns were written with their chunk
  const int skip = b.job.pending_count + 1;
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
    if (!b.owns(c)) continue;
    bf16_bits* dst = b.conv_at(b.job.from_conv_row, b.channel(c), 0);
    for (int lc = first_local; lc < b.wc + n; ++lc) {
      const int g = c0 + lc;
      if (g >= skip) dst[g - skip] = sh.hist[c * hist_cols + lc];
    }
  }
}

__device__ void conv_chunk(const Block& b, const Shared& sh, int hist_cols, int n) {
#pragma unroll 4
  for (int idx = threadIdx.x; idx < b.nch * n; idx += blockDim.x) {
    const int c = idx % b.nch, jl = idx / b.nch;
    float in[kConvWidth];
    float taps[kConvWidth];
    const float* taps_src =
        b.p.conv_taps + (int64_t{b.layer} * b.p.conv_dim() + b.channel(c)) * kConvWidth;
#pragma unroll
    for (int t = 0; t < kConvWidth; ++t) {
      in[t] = num::bf16_to_float(sh.hist[c * hist_cols + jl + t]);
      taps[t] = taps_src[t];
    }
    sh.act[jl * b.act_stride() + c] = num::conv_channel(in, taps, kConvWidth);
  }
}

// Norm denominators and gates per token, then q and k normalised in place.
template <int K>
__device__ void norms_and_gates(const Block& b, const Shared& sh, int n) {
  for (int idx = threadIdx.x; idx < 3 * n; idx += blockDim.x) {
    if (idx < 2 * n) {
      const int jl = idx >> 1, which = idx & 1;  // 0: q, 1: k
      sh.denom[idx] = norm_denominator<K>(sh.act + jl * b.act_stride() + which * K);
    } else {
      const int jl = idx - 2 * n;
      const int pi = b.layer * b.p.HV + b.hv;
      const num::Gates g =
          num::gdn_gates(num::bf16_to_float(sh.ab[2 * jl]), num::bf16_to_float(sh.ab[2 * jl + 1]),
                         b.p.a_log[pi], b.p.dt_bias[pi]);
      sh.gates[2 * jl] = g.alpha;
      sh.gates[2 * jl + 1] = g.beta;
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < 2 * K * n; idx += blockDim.x) {
    const int jl = idx / (2 * K), c = idx % (2 * K);
    float* row = sh.act + jl * b.act_stride();
    row[c] = c < K ? num::normalize_query(row[c], sh.denom[2 * jl], b.p.q_scale)
                   : num::normalize_key(row[c], sh.denom[2 * jl + 1]);
    if (c >= K) row[b.nch + c - K] = row[c];  // the second copy of k_hat
  }
}

__device__ void store_output(const Block& b, const SequenceLaunch& L, int jn, int col,
                             bf16_bits value) {
  if (!L.outputs) return;
  const int64_t idx =
      ((int64_t{b.task} * L.output_tokens + jn) * b.p.layers + b.layer) * b.p.HV + b.hv;
  L.outputs[idx * b.V + col] = value;
}

// Recurrence over chunk tokens, with the writes each token asks for.
template <int K, bool kBf16>
__device__ void recur_chunk(const Block& b, const SequenceLaunch& L, const Shared& sh,
                            int hist_cols, int c0, int n, float (&s)[K]) {
  const int col = threadIdx.x;
  const int pending = b.job.pending_count;
  for (int jl = 0; jl < n; ++jl) {
    const int j = c0 + jl;
    const float* act = sh.act + jl * b.act_stride();  // [q_hat K | k_hat K | v V | k_hat K]
    const float o = column_step<K>(s, act, act + K, act + b.nch, act[2 * K + col], sh.gates[2 * jl],
                                   sh.gates[2 * jl + 1]);
    if (j < pending) {
      if (j == pending - 1) {
        if constexpr (kBf16) {  // continue from the committed value as the pool stores it
#pragma unroll
          for (int i = 0; i < K; ++i)
            s[i] = num::round_to_bf16(s[i]);
        }
        store_ssm<K, kBf16>(b, b.job.pending_commit_row, col, s);
        store_window(b, sh, hist_cols, b.job.pending_commit_row, jl);
      }
      continue;
    }
    const int jn = j - pending;
    store_output(b, L, jn, col, num::bf16_from_float(o));
    for (int w = 0; w < b.job.write_count; ++w) {
      const SeqWrite wr = L.writes[b.job.first_write + w];
      if (wr.after_tokens != jn + 1) continue;
      store_ssm<K, kBf16>(b, wr.row, col, s);
      store_window(b, sh, hist_cols, wr.row, jl);
    }
    if (jn < kMaxVerifyTokens && b.job.ssm_only_rows[jn] != kNoRow) {
      store_ssm<K, kBf16>(b, b.job.ssm_only_rows[jn], col, s);
    }
  }
}

// hist columns n .. n+W-2 (the window after the chunk) -> columns 0 .. W-2.
__device__ void carry_window(const Block& b, const Shared& sh, int hist_cols, int n) {
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
    for (int t = 0; t < b.wc; ++t)
      sh.hist[c * hist_cols + t] = sh.hist[c * hist_cols + n + t];
  }
}

template <int K, bool kBf16>
__global__ void __launch_bounds__(kBlockThreads, 2)
    sequence_kernel(const __grid_constant__ DevicePool p, const __grid_constant__ SequenceLaunch L,
                    const __grid_constant__ SharedLayout lay) {
  const int task = blockIdx.z, layer = blockIdx.y, hv = blockIdx.x, col = threadIdx.x;
  const SeqJob& job = L.jobs[task];
  Block b{p, job, task, layer, hv, hv / (p.HV / p.H), K, p.V, kConvWidth - 1, lay.nch, false};
  const int first_zero_output = job.active ? job.new_count : 0;
  for (int jn = first_zero_output; jn < L.output_tokens; ++jn)
    store_output(b, L, jn, col, 0);
  if (!job.active) return;

  float s[K];  // column `col` of the head's state, fp32
  load_state<K, kBf16>(b, col, s);
  const Shared sh = carve_shared(lay);
  load_window(b, sh, lay.hist_cols);
  __syncthreads();
  b.qk_writer = elect_qk_writer(p, L, task, layer, b.h);

  const int total = job.pending_count + job.new_count;
  for (int c0 = 0; c0 < total; c0 += lay.chunk) {
    const int n = min(lay.chunk, total - c0);
    stage_inputs(b, sh, lay.hist_cols, c0, n);
    __syncthreads();
    if (job.rewrite_wide_conv) rewrite_wide_conv(b, sh, lay.hist_cols, c0, n);
    conv_chunk(b, sh, lay.hist_cols, n);
    __syncthreads();
    norms_and_gates<K>(b, sh, n);
    __syncthreads();
    recur_chunk<K, kBf16>(b, L, sh, lay.hist_cols, c0, n, s);
    __syncthreads();
    carry_window(b, sh, lay.hist_cols, n);
    __syncthreads();
  }
}

template <int K, bool kBf16>
void launch_typed(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  SharedLayout lay;
  lay.nch = 2 * K + p.V;
  lay.k = K;
  lay.chunk = std::max(1, std::min(kMaxChunk, L.max_tokens));
  lay.hist_cols = (kConvWidth - 1) + lay.chunk;
  const size_t smem = lay.bytes();
  if (smem > 48 * 1024) {
    CUDA_CHECK(cudaFuncSetAttribute(sequence_kernel<K, kBf16>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  }
  const dim3 grid(p.HV, p.layers, L.job_count);
  sequence_kernel<K, kBf16><<<grid, p.V, smem, stream>>>(p, L, lay);
  CUDA_CHECK_LAUNCH();
}

template <int K>
void launch_k(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  if (p.ssm_bf16) {
    launch_typed<K, true>(p, L, stream);
  } else {
    launch_typed<K, false>(p, L, stream);
  }
}

}  // namespace

bool sequence_kernel_supports(int32_t K, int32_t V, int32_t W) {
  return (K == 16 || K == 128) && V == K && W == kConvWidth;
}

void launch_sequence(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  if (L.job_count == 0) return;
  if (p.K == 128) {
    launch_k<128>(p, L, stream);
  } else {
    launch_k<16>(p, L, stream);
  }
}

}  // namespace specstate::cuda
