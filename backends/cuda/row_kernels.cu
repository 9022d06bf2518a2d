// Data-movement kernels of the CUDA backend: row copies, device digests, parameter generation.
#include <algorithm>

#include "backends/cuda/bf16_pair.cuh"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/ssm_layout.h"
#include "core/numerics/digest.h"
#include "core/numerics/inputs.h"

namespace specstate::cuda {
namespace {

using num::bf16_bits;

constexpr int kCopyThreads = 256;
constexpr int kCopyUnroll = 4;  // 16-byte loads in flight per thread before the stores
constexpr int kDigestThreads = 256;

// Block x of a row's copy takes an equal slice of its SSM 16-byte vectors and conv channels.
__global__ void __launch_bounds__(kCopyThreads)
    copy_rows_kernel(const __grid_constant__ DevicePool p, const CopyJob* jobs) {
  const CopyJob job = jobs[blockIdx.z];
  if (job.src_ssm_row == kNoRow || job.dst_row == kNoRow) return;
  if (!guard_passes(p.accepted, job.guard_row, job.guard_count)) return;
  const int layer = blockIdx.y, slices = gridDim.x, slice = blockIdx.x;

  if (job.src_ssm_row != job.dst_row) {
    const int64_t row_bytes = p.ssm_row_elements() * (p.ssm_bf16 ? 2 : 4);
    const int64_t vectors = row_bytes / 16;
    const int64_t per_slice = (vectors + slices - 1) / slices;
    const int64_t begin = slice * per_slice, end = min(vectors, begin + per_slice);
    const char* ssm = static_cast<const char*>(p.ssm);
    const uint4* src = reinterpret_cast<const uint4*>(
        ssm + (int64_t{layer} * p.rows + job.src_ssm_row) * row_bytes);
    uint4* dst = reinterpret_cast<uint4*>(static_cast<char*>(p.ssm) +
                                          (int64_t{layer} * p.rows + job.dst_row) * row_bytes);
    const int64_t stride = int64_t{blockDim.x} * kCopyUnroll;
    for (int64_t v = begin + threadIdx.x; v < end; v += stride) {
      uint4 buf[kCopyUnroll];
#pragma unroll
      for (int u = 0; u < kCopyUnroll; ++u) {
        const int64_t i = v + int64_t{u} * blockDim.x;
        if (i < end) buf[u] = src[i];
      }
#pragma unroll
      for (int u = 0; u < kCopyUnroll; ++u) {
        const int64_t i = v + int64_t{u} * blockDim.x;
        if (i < end) dst[i] = buf[u];
      }
    }
  }

  const int C = p.conv_dim(), wc = p.W - 1;
  const int per_slice = (C + slices - 1) / slices;
  const int end = min(C, (slice + 1) * per_slice);
  for (int ch = slice * per_slice + threadIdx.x; ch < end; ch += blockDim.x) {
    const bf16_bits* src = p.conv +
                           ((int64_t{layer} * p.rows + job.src_conv_row) * C + ch) * p.conv_cols +
                           job.src_conv_offset;
    bf16_bits* dst = p.conv + ((int64_t{layer} * p.rows + job.dst_row) * C + ch) * p.conv_cols;
    bf16_bits window[8];  // W - 1 <= 7; the whole window is read before any of it is written
    for (int t = 0; t < wc; ++t)
      window[t] = src[t];
    for (int t = 0; t < wc; ++t)
      dst[t] = window[t];
  }
}

// The digest term of SSM block b of one layer's row of `ssm_row`, b in the device order of
// ssm_block_in_device_order (the sum does not depend on the order, and consecutive threads read
// consecutive bytes): its 2 fp32 or 4 bf16 elements read through the device layout, indexed by
// the block's canonical place after `first_index`, the index of the row's canonical block 0.
__device__ uint64_t ssm_digest_term(const DevicePool& p, int64_t layer, int32_t ssm_row, int64_t b,
                                    int64_t first_index) {
  const int E = p.ssm_bf16 ? 2 : 4, K = p.K;
  const int64_t head_blocks = int64_t{K} * K * E / 8, hv = b / head_blocks;
  const SsmBlock at = ssm_block_in_device_order(b % head_blocks, K, E);
  const char* head = static_cast<const char*>(p.ssm) +
                     ((layer * p.rows + ssm_row) * p.ssm_row_elements() + hv * K * K) * E;
  uint64_t block;
  if (E == 4) {
    block = *reinterpret_cast<const uint64_t*>(head + at.first * E);
  } else {
    block = uint64_t{*reinterpret_cast<const uint32_t*>(head + at.first * E)} |
            uint64_t{*reinterpret_cast<const uint32_t*>(head + at.second * E)} << 32;
  }
  return num::digest_block(uint64_t(first_index + hv * head_blocks + at.canonical), block);
}

// Words: conv [layers, conv_dim, cols] of the conv row, then the SSM row of every layer as
// little-endian 16-bit halves in the canonical order, four to a block; the sum of digest_block
// over the blocks wraps mod 2^64. conv_dim is a multiple of 16 (K = V = 16 or 128), so the conv
// words fill whole blocks, and an SSM block is 8 bytes of one layer's canonical row.
__global__ void __launch_bounds__(kDigestThreads)
    digest_kernel(const __grid_constant__ DevicePool p, StateLoc loc, int first_col, int cols,
                  unsigned long long* result) {
  const int C = p.conv_dim();
  const int64_t conv_blocks = int64_t{p.layers} * C * cols / 4;
  const int64_t ssm_blocks = p.ssm_row_elements() * (p.ssm_bf16 ? 2 : 4) / 8;  // per layer
  const int64_t total = conv_blocks + p.layers * ssm_blocks;
  uint64_t sum = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    if (i < conv_blocks) {
      uint16_t w[4];
      for (int u = 0; u < 4; ++u) {
        const int64_t word = 4 * i + u;
        const int64_t layer = word / (int64_t{C} * cols), rest = word % (int64_t{C} * cols);
        const int64_t ch = rest / cols, t = rest % cols;
        w[u] = p.conv[((layer * p.rows + loc.conv_row) * C + ch) * p.conv_cols + first_col + t];
      }
      sum += num::digest_block(uint64_t(i), num::digest_pack(w[0], w[1], w[2], w[3]));
    } else {
      const int64_t k = i - conv_blocks, layer = k / ssm_blocks;
      sum +=
          ssm_digest_term(p, layer, loc.ssm_row, k % ssm_blocks, conv_blocks + layer * ssm_blocks);
    }
  }
  __shared__ uint64_t partial[kDigestThreads];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(result, static_cast<unsigned long long>(partial[0]));
}

// One (layer, gather) per block; thread e moves word e of every entry, in entry order, so an
// entry is read before any later entry overwrites it (from[j] >= j, increasing). The threads
// that read word e of an entry are the ones that write it: no barrier between entries.
__global__ void __launch_bounds__(kCopyThreads)
    gather_payload_kernel(const __grid_constant__ DevicePool p, const GatherJob* jobs) {
  const GatherJob& g = jobs[blockIdx.y];
  const int layer = blockIdx.x, words = int(p.token.bytes() / 4);  // x and values: whole words
  auto entry = [&](int j) {
    int token = g.first + j;
    if (token >= p.payload_tokens) token -= p.payload_tokens;
    return reinterpret_cast<uint32_t*>(
        p.payload +
        ((int64_t{layer} * p.slots + g.slot) * p.payload_tokens + token) * p.token.bytes());
  };
  for (int j = 0; j < g.count; ++j) {
    if (g.from[j] == j) continue;
    const uint32_t* src = entry(g.from[j]);
    uint32_t* dst = entry(j);
    for (int e = threadIdx.x; e < words; e += blockDim.x)
      dst[e] = src[e];
  }
}

__global__ void set_accepted_kernel(int32_t* accepted, const AcceptedCount* counts, int32_t n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) accepted[counts[i].req_row] = counts[i].count;
}

__global__ void generate_params_kernel(const __grid_constant__ DevicePool p, float* conv_taps,
                                       float* a_log, float* dt_bias) {
  const int C = p.conv_dim();
  const int64_t taps = int64_t{p.layers} * C * p.W;
  const int64_t heads = int64_t{p.layers} * p.HV;
  const int64_t biases = heads * p.A;  // [layers, HV, A]: entry hv * A + i of a layer
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < taps + heads + biases;
       i += int64_t{gridDim.x} * blockDim.x) {
    if (i < taps) {
      const int l = int(i / (int64_t{C} * p.W));
      const uint32_t layer = uint32_t(p.layer_ids[l]);
      const uint32_t ch = uint32_t(i / p.W % C), tap = uint32_t(i % p.W);
      conv_taps[i] =
          num::bf16_to_float(num::gen_conv_weight(p.seed, layer, p.model.conv_channel(ch), tap));
    } else if (i < taps + heads) {
      const int64_t k = i - taps;
      const uint32_t layer = uint32_t(p.layer_ids[k / p.HV]), head = uint32_t(k % p.HV);
      a_log[k] = num::bf16_to_float(num::gen_a_log(p.seed, layer, p.model.value_head(head)));
    } else {
      const int64_t k = i - taps - heads, per_layer = int64_t{p.HV} * p.A;
      const uint32_t layer = uint32_t(p.layer_ids[k / per_layer]), e = uint32_t(k % per_layer);
      dt_bias[k] =
          num::bf16_to_float(num::gen_dt_bias(p.seed, layer, p.model.head_entry(e, uint32_t(p.A))));
    }
  }
}

}  // namespace

void launch_copy_rows(const DevicePool& p, const CopyJob* jobs, int32_t job_count,
                      cudaStream_t stream) {
  if (job_count == 0) return;
  // Enough 256-thread slices per row that each thread moves about kCopyUnroll vectors.
  const int64_t vectors = p.ssm_row_elements() * (p.ssm_bf16 ? 2 : 4) / 16;
  const int slices = int(std::clamp<int64_t>(vectors / (kCopyThreads * kCopyUnroll), 1, 1024));
  const dim3 grid(slices, p.layers, job_count);
  copy_rows_kernel<<<grid, kCopyThreads, 0, stream>>>(p, jobs);
  CUDA_CHECK_LAUNCH();
}

void launch_gather_payload(const DevicePool& p, const GatherJob* jobs, int32_t job_count,
                           cudaStream_t stream) {
  if (job_count == 0) return;
  gather_payload_kernel<<<dim3(p.layers, job_count), kCopyThreads, 0, stream>>>(p, jobs);
  CUDA_CHECK_LAUNCH();
}

void launch_set_accepted(int32_t* accepted, const AcceptedCount* counts, int32_t n,
                         cudaStream_t stream) {
  if (n == 0) return;
  set_accepted_kernel<<<(n + kCopyThreads - 1) / kCopyThreads, kCopyThreads, 0, stream>>>(
      accepted, counts, n);
  CUDA_CHECK_LAUNCH();
}

void launch_digest(const DevicePool& p, const StateLoc& loc, int32_t first_col, int32_t cols,
                   unsigned long long* result, cudaStream_t stream) {
  const int64_t digest_blocks = (int64_t{p.layers} * p.conv_dim() * cols +
                                 p.layers * p.ssm_row_elements() * (p.ssm_bf16 ? 1 : 2)) /
                                4;
  const int blocks = int(std::clamp<int64_t>(digest_blocks / (kDigestThreads * 4), 1, 1024));
  CUDA_CHECK(cudaMemsetAsync(result, 0, sizeof(unsigned long long), stream));
  digest_kernel<<<blocks, kDigestThreads, 0, stream>>>(p, loc, first_col, cols, result);
  CUDA_CHECK_LAUNCH();
}

void launch_generate_params(const DevicePool& p, float* conv_taps, float* a_log, float* dt_bias,
                            cudaStream_t stream) {
  const int64_t n = int64_t{p.layers} * (int64_t{p.conv_dim()} * p.W + p.HV * (1 + p.A));
  const int blocks = int(std::clamp<int64_t>((n + 255) / 256, 1, 1024));
  generate_params_kernel<<<blocks, 256, 0, stream>>>(p, conv_taps, a_log, dt_bias);
  CUDA_CHECK_LAUNCH();
}

namespace {

// Every float u (as bits) in both halves of a pair: against bf16_from_float, and the widening
// back against bf16_to_float.
__global__ void bf16_pair_check_kernel(unsigned long long* mismatches) {
  unsigned long long bad = 0;
  const uint64_t stride = uint64_t{gridDim.x} * blockDim.x;
  for (uint64_t u = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x; u < (uint64_t{1} << 32);
       u += stride) {
    const float f = num::bits_float(uint32_t(u));
    const float g = num::bits_float(uint32_t(u) ^ 0x80000001u);  // another float beside it
    const uint32_t w = bf16_pair_bits(f, g);
    const bool ok =
        (w & 0xFFFFu) == num::bf16_from_float(f) && (w >> 16) == num::bf16_from_float(g) &&
        num::float_bits(bf16_lo(w)) == num::float_bits(num::bf16_to_float(uint16_t(w))) &&
        num::float_bits(bf16_hi(w)) == num::float_bits(num::bf16_to_float(uint16_t(w >> 16)));
    bad += ok ? 0 : 1;
  }
  if (bad) atomicAdd(mismatches, bad);
}

}  // namespace

uint64_t count_bf16_pair_mismatches() {
  DeviceBuffer<unsigned long long> count(1);
  CUDA_CHECK(cudaMemset(count.data(), 0, sizeof(unsigned long long)));
  bf16_pair_check_kernel<<<4096, 256>>>(count.data());
  CUDA_CHECK_LAUNCH();
  unsigned long long host = 0;
  CUDA_CHECK(cudaMemcpy(&host, count.data(), sizeof host, cudaMemcpyDeviceToHost));
  return host;
}

}  // namespace specstate::cuda
