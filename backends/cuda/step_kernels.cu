// The step path: the same jobs as the fused sequence kernel, for at most kStepMaxTokens tokens,
// in two launches.
//
// prep_kernel, one block per (key head h, layer, job): owns the conv channels of q and k of h and
// of v of the HV/H value heads that use h, so it reads every source window it writes and no
// other block touches them. It stages the token inputs (generated or from a payload slot), writes
// payload and conv windows, computes the conv outputs, q_hat, k_hat and the gates, and stores the
// per-token vectors in the step scratch.
//
// recur_kernel, one block per (value head, layer, job), one thread per column: loads the state
// column into registers, then per token reads q_hat, k_hat, v and the gates from shared memory,
// runs gdn_column's sequence and writes outputs and the requested SSM states. Holding nothing but
// the state, it fits three blocks per multiprocessor.
#include <algorithm>

#include "backends/cuda/column_math.cuh"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernels.h"
#include "core/numerics/gdn_step.h"
#include "core/numerics/inputs.h"

namespace specstate::cuda {
namespace {

using num::bf16_bits;

constexpr int kConvWidth = 4;
constexpr int kWc = kConvWidth - 1;
constexpr int kPrepThreads = 256;
constexpr int kRecurChunk = 16;

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
  float* qk;           // [tokens, 2K] fp32: conv outputs of q, k; normalised in place
  float* denom;        // [tokens, 2] fp32
  uint64_t* x_prefix;  // [tokens]: conv-input hash state before the channel (generated tokens)
  bf16_bits* hist;     // [nch, hist_cols] bf16: source window, then every token's input
  bf16_bits* ab;       // [tokens, ratio, 2] bf16: gate inputs a, b
};

struct PrepBlock {
  const DevicePool& p;
  const SequenceLaunch& L;
  const SeqJob& job;
  int task, layer, h, ratio, K, nch, hist_cols;

  __device__ int channel(int c) const {
    if (c < K) return h * K + c;
    if (c < 2 * K) return p.H * K + h * K + (c - K);
    return 2 * p.H * K + h * ratio * K + (c - 2 * K);
  }
  __device__ bf16_bits* conv_at(int row, int ch, int col) const {
    return p.conv + ((int64_t{layer} * p.rows + row) * p.conv_dim() + ch) * p.conv_cols + col;
  }
  __device__ bf16_bits* payload_at(int slot, int token) const {
    return p.payload + ((int64_t{layer} * p.slots + slot) * p.payload_tokens + token) *
                           p.payload_token_elements();
  }
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
  __device__ int64_t token_index(int j) const {  // (job, layer, token) in the step scratch
    return (int64_t{task} * p.layers + layer) * L.step_tokens + j;
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

__device__ void prep_load_window(const PrepBlock& b, const PrepShared& sh) {
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
    const bf16_bits* src =
        b.job.from_zero ? nullptr
                        : b.conv_at(b.job.from_conv_row, b.channel(c), b.job.from_conv_offset);
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
  const int pending = b.job.pending_count;
  const bool to_payload = b.job.payload_out_slot != kNoRow;
  const int C = b.p.conv_dim();
  for (int j = threadIdx.x; j < total; j += blockDim.x) {
    if (!b.payload_token(j)) sh.x_prefix[j] = conv_input_prefix(b.coord(j));
  }
  __syncthreads();
  for (int j = 0; j < total; ++j) {  // nested loops: no run-time division in the index math
    const bf16_bits* src = b.payload_token(j);
    bf16_bits* out =
        to_payload && j >= pending ? b.payload_at(b.job.payload_out_slot, j - pending) : nullptr;
    for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
      const int ch = b.channel(c);
      const bf16_bits x = src ? src[ch] : conv_input_from_prefix(sh.x_prefix[j], ch);
      sh.hist[c * b.hist_cols + kWc + j] = x;
      if (out) out[ch] = x;
    }
  }
  for (int idx = threadIdx.x; idx < b.ratio * total; idx += blockDim.x) {
    const int r = idx % b.ratio, j = idx / b.ratio, hv = b.h * b.ratio + r;
    const bf16_bits* src = b.payload_token(j);
    const bf16_bits a = src ? src[C + hv] : num::gen_gate_a(b.coord(j), hv);
    const bf16_bits bb = src ? src[C + b.p.HV + hv] : num::gen_gate_b(b.coord(j), hv);
    sh.ab[2 * idx] = a;
    sh.ab[2 * idx + 1] = bb;
    if (to_payload && j >= pending) {
      bf16_bits* dst = b.payload_at(b.job.payload_out_slot, j - pending);
      dst[C + hv] = a;
      dst[C + b.p.HV + hv] = bb;
    }
  }
}

// The window after sequence token j (hist columns j+1 .. j+W-1) -> columns 0.. of `row`. In
// window mode the final rewrite of the source conv row covers columns 0..W-2, as on the CPU.
__device__ void prep_store_window(const PrepBlock& b, const PrepShared& sh, int row, int j) {
  if (b.job.rewrite_wide_conv && row == b.job.from_conv_row) return;
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
    bf16_bits* dst = b.conv_at(row, b.channel(c), 0);
    for (int t = 0; t < kWc; ++t)
      dst[t] = sh.hist[c * b.hist_cols + j + 1 + t];
  }
}

// Conv windows of every full-state write, token by token (a later token's write wins).
__device__ void prep_windows(const PrepBlock& b, const PrepShared& sh, int total) {
  const int pending = b.job.pending_count;
  for (int j = 0; j < total; ++j) {
    if (j == pending - 1) prep_store_window(b, sh, b.job.pending_commit_row, j);
    for (int w = 0; w < b.job.write_count; ++w) {
      const SeqWrite wr = b.L.writes[b.job.first_write + w];
      if (pending + wr.after_tokens - 1 == j) prep_store_window(b, sh, wr.row, j);
    }
  }
  if (b.job.rewrite_wide_conv) {  // [window[1..W-2], x_0 .. x_{n-1}]
    const int skip = pending + 1, cols = kWc - 1 + b.job.new_count;
    for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {
      bf16_bits* dst = b.conv_at(b.job.from_conv_row, b.channel(c), 0);
      for (int t = 0; t < cols; ++t)
        dst[t] = sh.hist[c * b.hist_cols + skip + t];
    }
  }
}

template <int K>
__device__ void prep_conv(const PrepBlock& b, const PrepShared& sh, int total) {
  const int HV = b.p.HV;
  for (int c = threadIdx.x; c < b.nch; c += blockDim.x) {  // taps once per channel
    const int ch = b.channel(c);
    float taps[kConvWidth];
    const float* taps_src = b.p.conv_taps + (int64_t{b.layer} * b.p.conv_dim() + ch) * kConvWidth;
#pragma unroll
    for (int t = 0; t < kConvWidth; ++t)
      taps[t] = taps_src[t];
    for (int j = 0; j < total; ++j) {
      float in[kConvWidth];
#pragma unroll
      for (int t = 0; t < kConvWidth; ++t) {
        in[t] = num::bf16_to_float(sh.hist[c * b.hist_cols + j + t]);
      }
      const float out = num::conv_channel(in, taps, kConvWidth);
      if (c < 2 * K) {
        sh.qk[j * 2 * K + c] = out;
      } else {  // v: a bf16 value already, stored exactly
        const int64_t v_index =
            b.token_index(j) * HV * K + int64_t{b.h} * b.ratio * K + (c - 2 * K);
        b.L.step_v[v_index] = num::bf16_from_float(out);
      }
    }
  }
}

template <int K>
__device__ void prep_norms_and_gates(const PrepBlock& b, const PrepShared& sh, int total) {
  const int HV = b.p.HV;
  for (int idx = threadIdx.x; idx < (2 + b.ratio) * total; idx += blockDim.x) {
    if (idx < 2 * total) {
      sh.denom[idx] = norm_denominator<K>(sh.qk + (idx >> 1) * 2 * K + (idx & 1) * K);
    } else {
      const int g = idx - 2 * total, r = g % b.ratio, j = g / b.ratio, hv = b.h * b.ratio + r;
      const int pi = b.layer * HV + hv;
      const num::Gates gates =
          num::gdn_gates(num::bf16_to_float(sh.ab[2 * g]), num::bf16_to_float(sh.ab[2 * g + 1]),
                         b.p.a_log[pi], b.p.dt_bias[pi]);
      float* dst = b.L.step_gates + (b.token_index(j) * HV + hv) * 2;
      dst[0] = gates.alpha;
      dst[1] = gates.beta;
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < 2 * K * total; idx += blockDim.x) {
    const int j = idx / (2 * K), c = idx % (2 * K);
    const float x = sh.qk[idx];
    const float y = c < K ? num::normalize_query(x, sh.denom[2 * j], b.p.q_scale)
                          : num::normalize_key(x, sh.denom[2 * j + 1]);
    b.L.step_qk[(b.token_index(j) * b.p.H + b.h) * 2 * K + c] = y;
  }
}

template <int K>
__global__ void __launch_bounds__(kPrepThreads)
    prep_kernel(const __grid_constant__ DevicePool p, const __grid_constant__ SequenceLaunch L,
                const __grid_constant__ PrepLayout lay) {
  // Let the recurrence grid start loading states as soon as every prep block runs (it waits
  // for this grid's completion before it reads the step scratch).
  asm volatile("griddepcontrol.launch_dependents;");
  const int task = blockIdx.z, layer = blockIdx.y, h = blockIdx.x;
  const SeqJob& job = L.jobs[task];
  if (!job.active) return;
  const PrepBlock b{p, L, job, task, layer, h, lay.ratio, K, lay.nch, lay.hist_cols};
  const PrepShared sh = carve_prep(lay, K);
  const int total = job.pending_count + job.new_count;
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

// Per token in shared memory: [q_hat K | k_hat K | v K | alpha | beta | pad 2 | k_hat K] fp32
// (k_hat twice: see column_step), every vector 16-byte aligned.
template <int K>
constexpr int kTokenFloats = 4 * K + 4;
template <int K>
constexpr int kKAgain = 3 * K + 4;

__device__ void store_output(const DevicePool& p, const SequenceLaunch& L, int task, int layer,
                             int hv, int jn, int col, bf16_bits value) {
  if (!L.outputs) return;
  const int64_t idx = ((int64_t{task} * L.output_tokens + jn) * p.layers + layer) * p.HV + hv;
  L.outputs[idx * p.V + col] = value;
}

// Tokens c0 .. c0+n-1 of head (h, hv): step scratch -> shared.
template <int K>
__device__ void recur_stage(const DevicePool& p, const SequenceLaunch& L, int64_t token0, int h,
                            int hv, int n, float* tok) {
  constexpr int kQk4 = 2 * K / 4;
  for (int idx = threadIdx.x; idx < n * kQk4; idx += blockDim.x) {
    const int j = idx / kQk4, q = idx % kQk4;
    const float4* src =
        reinterpret_cast<const float4*>(L.step_qk + ((token0 + j) * p.H + h) * 2 * K);
    const float4 x = src[q];
    float* dst = tok + j * kTokenFloats<K>;
    reinterpret_cast<float4*>(dst)[q] = x;
    if (q >= K / 4) reinterpret_cast<float4*>(dst + kKAgain<K>)[q - K / 4] = x;
  }
  for (int idx = threadIdx.x; idx < n * K; idx += blockDim.x) {
    const int j = idx / K, c = idx % K;
    tok[j * kTokenFloats<K> + 2 * K + c] =
        num::bf16_to_float(L.step_v[((token0 + j) * p.HV + hv) * K + c]);
  }
  for (int idx = threadIdx.x; idx < 2 * n; idx += blockDim.x) {
    tok[(idx >> 1) * kTokenFloats<K> + 3 * K + (idx & 1)] =
        L.step_gates[((token0 + (idx >> 1)) * p.HV + hv) * 2 + (idx & 1)];
  }
}

template <int K, bool kBf16>
__device__ void* ssm_head(const DevicePool& p, int layer, int row, int hv) {
  const int64_t e = (int64_t{layer} * p.rows + row) * p.ssm_row_elements() + int64_t{hv} * K * K;
  return static_cast<char*>(p.ssm) + e * (kBf16 ? 2 : 4);
}

// The SSM stores the job asks for after new token jn: how many, and the head of the last one.
template <int K, bool kBf16>
__device__ int state_stores(const DevicePool& p, const SequenceLaunch& L, const SeqJob& job,
                            int layer, int hv, int jn, void** head) {
  int stores = 0;
  for (int w = 0; w < job.write_count; ++w) {
    const SeqWrite wr = L.writes[job.first_write + w];
    if (wr.after_tokens == jn + 1) {
      ++stores;
      *head = ssm_head<K, kBf16>(p, layer, wr.row, hv);
    }
  }
  if (jn < kMaxVerifyTokens && job.ssm_only_rows[jn] != kNoRow) {
    ++stores;
    *head = ssm_head<K, kBf16>(p, layer, job.ssm_only_rows[jn], hv);
  }
  return stores;
}

// Chunk tokens c0 .. c0+n-1 (vectors in `tok`). Where token t needs at most one state store and
// token t+1 is in the chunk, t's second pass runs fused with t+1's first (two independent chains
// per thread instead of one); otherwise the passes run one after the other.
template <int K, bool kBf16>
__device__ void recur_chunk(const DevicePool& p, const SequenceLaunch& L, const SeqJob& job,
                            int task, int layer, int hv, int c0, int n, const float* tok,
                            float (&s)[K]) {
  const int col = threadIdx.x, pending = job.pending_count;
  float m = decay_and_project<K>(s, tok + K, tok[3 * K]);
  for (int jl = 0; jl < n; ++jl) {
    const int j = c0 + jl, jn = j - pending;
    const float* t = tok + jl * kTokenFloats<K>;
    const float* next = t + kTokenFloats<K>;
    const float delta = num::fmul(t[3 * K + 1], num::fsub(t[2 * K + col], m));
    const bool commit = j == pending - 1;
    void* head = nullptr;
    const int stores = j >= pending ? state_stores<K, kBf16>(p, L, job, layer, hv, jn, &head) : 0;
    float o;
    if (jl + 1 < n && !commit && stores <= 1) {
      o = stores == 1 ? update_output_then_project<K, kBf16, true>(
                            s, t + kKAgain<K>, t, delta, next + K, next[3 * K], head, col, m)
                      : update_output_then_project<K, kBf16, false>(
                            s, t + kKAgain<K>, t, delta, next + K, next[3 * K], nullptr, col, m);
    } else {
      o = update_and_output<K>(s, t + kKAgain<K>, t, delta);
      if (commit) {
        if constexpr (kBf16) {  // continue from the committed value as the pool stores it
#pragma unroll
          for (int i = 0; i < K; ++i)
            s[i] = num::round_to_bf16(s[i]);
        }
        store_column<K, kBf16>(ssm_head<K, kBf16>(p, layer, job.pending_commit_row, hv), col, s);
      } else if (j >= pending) {
        for (int w = 0; w < job.write_count; ++w) {
          const SeqWrite wr = L.writes[job.first_write + w];
          if (wr.after_tokens == jn + 1) {
            store_column<K, kBf16>(ssm_head<K, kBf16>(p, layer, wr.row, hv), col, s);
          }
        }
        if (jn < kMaxVerifyTokens && job.ssm_only_rows[jn] != kNoRow) {
          store_column<K, kBf16>(ssm_head<K, kBf16>(p, layer, job.ssm_only_rows[jn], hv), col, s);
        }
      }
      if (jl + 1 < n) m = decay_and_project<K>(s, next + K, next[3 * K]);
    }
    if (j >= pending) store_output(p, L, task, layer, hv, jn, col, num::bf16_from_float(o));
  }
}

template <int K, bool kBf16>
__global__ void __launch_bounds__(K, K == 128 ? 3 : 8)
    recur_kernel(const __grid_constant__ DevicePool p, const __grid_constant__ SequenceLaunch L) {
  const int task = blockIdx.z, layer = blockIdx.y, hv = blockIdx.x, col = threadIdx.x;
  const SeqJob& job = L.jobs[task];
  const int new_count = job.new_count, pending = job.pending_count;
  for (int jn = job.active ? new_count : 0; jn < L.output_tokens; ++jn) {
    store_output(p, L, task, layer, hv, jn, col, 0);
  }
  if (!job.active) return;
  const int h = hv / (p.HV / p.H);

  float s[K];  // column `col` of the head's state, fp32
  if (job.from_zero) {
#pragma unroll
    for (int i = 0; i < K; ++i)
      s[i] = 0.0f;
  } else {
    load_column<K, kBf16>(ssm_head<K, kBf16>(p, layer, job.from_ssm_row, hv), col, s);
  }
  // Launched dependent on the prep grid (programmatic dependent launch): the state loads above
  // overlap the end of prep; its writes are visible after this wait. Nothing before the wait
  // touches what prep writes (conv windows, payload, step scratch).
  asm volatile("griddepcontrol.wait;" ::: "memory");
  extern __shared__ float4 recur_raw[];
  float* tok = reinterpret_cast<float*>(recur_raw);  // [kRecurChunk, kTokenFloats] fp32
  const int64_t token0 = (int64_t{task} * p.layers + layer) * L.step_tokens;
  const int total = pending + new_count;
  for (int c0 = 0; c0 < total; c0 += kRecurChunk) {
    const int n = min(kRecurChunk, total - c0);
    recur_stage<K>(p, L, token0 + c0, h, hv, n, tok);
    __syncthreads();
    recur_chunk<K, kBf16>(p, L, job, task, layer, hv, c0, n, tok, s);
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
  config.blockDim = dim3(K);
  config.dynamicSmemBytes = size_t(kRecurChunk) * kTokenFloats<K> * sizeof(float);
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

void launch_step(const DevicePool& p, const SequenceLaunch& L, cudaStream_t stream) {
  if (L.job_count == 0) return;
  if (p.K == 128) {
    launch_step_k<128>(p, L, stream);
  } else {
    launch_step_k<16>(p, L, stream);
  }
}

}  // namespace specstate::cuda
