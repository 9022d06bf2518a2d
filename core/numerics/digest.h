// Row digests. The digest of a sequence of 16-bit words w_i is sum_i mix64(i << 16 | w_i) mod 2^64:
// position-sensitive, and a sum, so a device can compute it with any parallel reduction and
// still match the host bit for bit. (fp32 words are digested as their two little-endian halves.)
#pragma once

#include "core/numerics/inputs.h"

namespace specstate::num {

SPECSTATE_HD inline uint64_t digest_term(uint64_t index, uint16_t word) {
  return mix64((index << 16) | word);
}

}  // namespace specstate::num
