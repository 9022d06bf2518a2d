// The digest terms of a run of blocks (core/numerics/digest.h, the definition), several blocks
// per vector operation. Every lane computes exactly digest_block and the sum mod 2^64 is
// order-free, so the lanes' partial sums give the scalar loop's value on any host: the choice of
// path changes the speed, never the digest. tests/test_cpu_math.cpp checks every path this host
// runs against digest_block. The digest is bound by mix64's two 64-bit multiplies, not by memory
// (docs/performance-history.md, "the vector digest"), so the paths differ in how they multiply:
//   - AVX-512 (F + DQ, chosen at run time where the CPU and OS have it; the build targets
//     x86-64-v3): eight blocks per operation, one vpmullq per multiply;
//   - AVX2 (the build's target): four blocks per operation, each 64-bit product built from three
//     32-bit ones (the low 64 bits of a product need lo*lo + (hi*lo + lo*hi) << 32);
//   - scalar: the rest of a run, and hosts without either.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/numerics/digest.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace specstate::cpu {

// sum of digest_block(first + i, block i) over the n little-endian 64-bit blocks at `bytes`, one
// block at a time.
inline uint64_t digest_blocks_scalar(const uint8_t* bytes, int64_t n, uint64_t first) {
  uint64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t b;
    std::memcpy(&b, bytes + 8 * i, 8);
    sum += num::digest_block(first + uint64_t(i), b);
  }
  return sum;
}

#if defined(__AVX2__)
namespace detail {
// a * c mod 2^64 per 64-bit lane.
inline __m256i mul64_by(__m256i a, uint64_t c) {
  const __m256i c_lo = _mm256_set1_epi64x(int64_t(c & 0xffffffffu));
  const __m256i c_hi = _mm256_set1_epi64x(int64_t(c >> 32));
  const __m256i cross =
      _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), c_lo), _mm256_mul_epu32(a, c_hi));
  return _mm256_add_epi64(_mm256_mul_epu32(a, c_lo), _mm256_slli_epi64(cross, 32));
}
inline __m256i xorshift(__m256i z, int s) {
  return _mm256_xor_si256(z, _mm256_srli_epi64(z, s));
}
}  // namespace detail

// The same sum, four blocks per AVX2 operation.
inline uint64_t digest_blocks_avx2(const uint8_t* bytes, int64_t n, uint64_t first) {
  using namespace detail;
  const __m256i golden = _mm256_set1_epi64x(int64_t(num::kMix64Increment));
  const __m256i step = _mm256_set1_epi64x(int64_t(4 * num::kDigestStride));
  __m256i index = _mm256_set_epi64x(
      int64_t((first + 3) * num::kDigestStride), int64_t((first + 2) * num::kDigestStride),
      int64_t((first + 1) * num::kDigestStride), int64_t(first * num::kDigestStride));
  __m256i acc = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256i block = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes + 8 * i));
    __m256i z = _mm256_add_epi64(_mm256_add_epi64(block, index), golden);
    z = mul64_by(xorshift(z, 30), num::kMix64Mul1);
    z = mul64_by(xorshift(z, 27), num::kMix64Mul2);
    acc = _mm256_add_epi64(acc, xorshift(z, 31));
    index = _mm256_add_epi64(index, step);
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] +
         digest_blocks_scalar(bytes + 8 * i, n - i, first + uint64_t(i));
}
#endif

#if defined(__AVX2__) && defined(__x86_64__)
namespace detail {
// z ^ (z >> s) per 64-bit lane. The zero-masked shift under an all-ones mask is the plain shift;
// GCC 12 warns of an uninitialised value in the plain one's header (its GCC bug 105593).
__attribute__((target("avx512f"))) inline __m512i xorshift512(__m512i z, unsigned s) {
  return _mm512_xor_si512(z, _mm512_maskz_srli_epi64(__mmask8(0xFF), z, s));
}
}  // namespace detail

// The same sum, eight blocks per AVX-512 operation. Compiled for AVX-512 F + DQ whatever the
// build's target; call it only where has_avx512_digest() says the host runs it.
__attribute__((target("avx512f,avx512dq"))) inline uint64_t digest_blocks_avx512(
    const uint8_t* bytes, int64_t n, uint64_t first) {
  const __m512i golden = _mm512_set1_epi64(int64_t(num::kMix64Increment));
  const __m512i mul1 = _mm512_set1_epi64(int64_t(num::kMix64Mul1));
  const __m512i mul2 = _mm512_set1_epi64(int64_t(num::kMix64Mul2));
  const __m512i step = _mm512_set1_epi64(int64_t(8 * num::kDigestStride));
  __m512i index = _mm512_mullo_epi64(
      _mm512_add_epi64(_mm512_set1_epi64(int64_t(first)), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0)),
      _mm512_set1_epi64(int64_t(num::kDigestStride)));
  __m512i acc = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i z =
        _mm512_add_epi64(_mm512_add_epi64(_mm512_loadu_si512(bytes + 8 * i), index), golden);
    z = _mm512_mullo_epi64(detail::xorshift512(z, 30), mul1);
    z = _mm512_mullo_epi64(detail::xorshift512(z, 27), mul2);
    acc = _mm512_add_epi64(acc, detail::xorshift512(z, 31));
    index = _mm512_add_epi64(index, step);
  }
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, acc);
  uint64_t sum = digest_blocks_scalar(bytes + 8 * i, n - i, first + uint64_t(i));
  for (const uint64_t lane : lanes)
    sum += lane;
  return sum;
}

// Whether this host (CPU and OS) runs digest_blocks_avx512; asked once.
inline bool has_avx512_digest() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  return has;
}
#endif

// sum of digest_block(first + i, block i) over the n little-endian 64-bit blocks at `bytes`, by
// the fastest path this host runs.
inline uint64_t digest_blocks(const uint8_t* bytes, int64_t n, uint64_t first) {
#if defined(__AVX2__) && defined(__x86_64__)
  if (has_avx512_digest()) return digest_blocks_avx512(bytes, n, first);
#endif
#if defined(__AVX2__)
  return digest_blocks_avx2(bytes, n, first);
#else
  return digest_blocks_scalar(bytes, n, first);
#endif
}

}  // namespace specstate::cpu
