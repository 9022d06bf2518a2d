// Row digests. A row's 16-bit words (all layers' conv values, then all layers' SSM bytes as
// little-endian halves) are taken four at a time as 64-bit blocks B_b (word 4b in the low bits,
// a last partial block padded with zero words), and the digest is
//   sum_b mix64(B_b + b * kDigestStride) mod 2^64.
// For a fixed position b the term is a bijection of the block, so a row that differs from
// another in any one block has another digest; the position enters every term, so moved blocks
// change it too. A sum is order-free: a device computes it with any parallel reduction and still
// matches the host bit for bit. One mix per 8 bytes keeps a digest near memory speed on a CPU.
#pragma once

#include "core/numerics/inputs.h"

namespace specstate::num {

inline constexpr uint64_t kDigestStride = 0xD1B54A32D192ED03ull;  // odd: index * stride is 1:1

SPECSTATE_HD inline uint64_t digest_block(uint64_t index, uint64_t block) {
  return mix64(block + index * kDigestStride);
}

SPECSTATE_HD inline uint64_t digest_pack(uint16_t w0, uint16_t w1, uint16_t w2, uint16_t w3) {
  return uint64_t{w0} | uint64_t{w1} << 16 | uint64_t{w2} << 32 | uint64_t{w3} << 48;
}

}  // namespace specstate::num
