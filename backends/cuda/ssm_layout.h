// Where element (k, v) of a [K, V] SSM head lives in the CUDA backend's memory. The layout is
// the backend's own (the CPU backend, dumps, digests and the Python package see the canonical
// row-major order: CudaBackend permutes on upload and download, digest_kernel reads through it);
// it is chosen so that every state load and store of the recurrence is one vector (16 bytes; 8
// for K = 16 bf16) and a warp's accesses are whole 128-byte lines.
//
// The recurrence's thread (chain c, column pair p) holds rows c*K/8 .. (c+1)*K/8 - 1 of columns
// 2p and 2p+1 (step_kernels.cu), and a warp holds the 8 chains of 4 consecutive pairs, so that
// the chains' partials combine by shuffles. The head is stored as units of R rows of one chain
// by the 2 columns of one pair, R * 2 elements in (row, column) order, 16 bytes (R = 2 fp32, 4
// bf16; fewer where a chain has fewer rows): unit (p, g, c), the g-th R rows of chain c of pair
// p, at ((p * G + g) * 8 + c) * 2R elements, G = K/8/R. A warp's load of its g-th units reads
// the 8 chains of each of its 4 pairs, 8 consecutive units: for K = 128, 4 runs of 128 bytes
// (for K = 16, where G = 1, one run of the 4 pairs).
#pragma once

#include <cstdint>

#include "core/numerics/gdn_step.h"
#include "core/numerics/hd.h"

namespace specstate::cuda {

// Rows per unit: 16 bytes of column pairs, at most a chain's rows.
SPECSTATE_HD constexpr int ssm_unit_rows(int K, int elem_bytes) {
  const int chain_rows = K / num::kChains, fill = 16 / (2 * elem_bytes);
  return chain_rows < fill ? chain_rows : fill;
}

// Element offset of unit g of chain c of the column pair whose first column is col0.
SPECSTATE_HD constexpr int64_t ssm_unit_offset(int col0, int g, int c, int K, int elem_bytes) {
  const int R = ssm_unit_rows(K, elem_bytes), G = K / num::kChains / R;
  return ((int64_t{col0 / 2} * G + g) * num::kChains + c) * 2 * R;
}

// Element offset of (k, v) inside a head of K = V rows and columns (step_kernels_support).
SPECSTATE_HD constexpr int64_t ssm_element_offset(int k, int v, int K, int elem_bytes) {
  const int R = ssm_unit_rows(K, elem_bytes), chain_rows = K / num::kChains;
  const int c = k / chain_rows, r = k % chain_rows;
  return ssm_unit_offset(v - v % 2, r / R, c, K, elem_bytes) + (r % R) * 2 + (v % 2);
}

// The recurrence's thread t (step_kernels.cu): lane l of warp w owns chain l % 8 of column pair
// 4w + l / 8, so a column's 8 chains are 8 lanes of one warp. Unsigned, so that the divisions are
// shifts and masks: at its register cap the token loop recomputes the lane from the thread index
// at every token, 16 instructions with signed arithmetic and 6 without (Nsight Compute, H100).
struct RecurLane {
  int chain, col0;  // chain index; first of the thread's two columns
};
SPECSTATE_HD constexpr RecurLane recur_lane(unsigned t) {
  constexpr unsigned kChains = num::kChains, kPairsPerWarp = 32 / kChains;
  return {int(t % kChains), int(2 * (t / 32 * kPairsPerWarp + t % 32 / kChains))};
}

// Where the digest reads SSM block b of a head (8 bytes of the canonical row-major order: 2
// fp32 or 4 bf16 elements of one state row), with b taken in an order that walks the device
// layout forward, so that consecutive b read consecutive bytes: `canonical` is the block's index
// in the canonical order, and its elements are the column pairs at `first` and `second` (fp32:
// one pair of 8 bytes, second unused; bf16: two pairs of 4 bytes, in units of neighbouring
// column pairs).
struct SsmBlock {
  int64_t canonical;
  int64_t first, second;  // element offsets in the head's device layout
};

SPECSTATE_HD constexpr SsmBlock ssm_block_in_device_order(int64_t b, int K, int elem_bytes) {
  const int R = ssm_unit_rows(K, elem_bytes), chain_rows = K / num::kChains;
  const int G = chain_rows / R, pairs_per_block = elem_bytes == 4 ? 1 : 2;
  // b = ((block column * G + g) * 8 + c) * R + r: the rows of a unit, its chains, its groups.
  const int r = int(b % R), c = int(b / R % num::kChains), g = int(b / R / num::kChains % G);
  const int64_t column_block = b / R / num::kChains / G;
  const int k = c * chain_rows + g * R + r, v = int(column_block) * 2 * pairs_per_block;
  return {(int64_t{k} * K + v) / (2 * pairs_per_block), ssm_element_offset(k, v, K, elem_bytes),
          ssm_element_offset(k, v + 2, K, elem_bytes)};
}

}  // namespace specstate::cuda
