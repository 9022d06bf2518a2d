// conv_channel's SiLU for 8 channels at once on AVX2 + FMA hosts: num::exp_f32 and
// num::silu_f32 (core/numerics/math.h, the definition) with their branches turned into blends.
// Every lane runs exactly the scalar operations in the scalar order, and the lanes a branch
// would not have taken are replaced, so each lane's bits are the scalar function's for every
// input but NaN, where both give a NaN (which the bf16 rounding after the conv makes canonical).
// tests/test_cpu_math.cpp checks this over 2^26 inputs and the edges of every branch.
#pragma once

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "core/numerics/bf16.h"
#include "core/numerics/math.h"

#define SPECSTATE_SILU_LANES 1

namespace specstate::cpu {

inline __m256 exp_lanes(__m256 x) {
  using namespace num;
  const __m256 n =
      _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), _mm256_set1_ps(kRoundMagic)),
                    _mm256_set1_ps(kRoundMagic));
  const __m256 minus_n = _mm256_xor_ps(n, _mm256_set1_ps(-0.0f));
  __m256 r = _mm256_fmadd_ps(minus_n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fmadd_ps(minus_n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(0x1.6a1b34p-10f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.1239ccp-7f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.5559p-5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.555492p-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.fffffcp-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // e = int(n); inside the range the scalar function reaches here, -150 <= e <= 128.
  const __m256i e = _mm256_cvttps_epi32(n);
  auto pow2i = [](__m256i k) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
  };
  const __m256 mid = _mm256_mul_ps(p, pow2i(e));
  const __m256 high = _mm256_mul_ps(
      _mm256_mul_ps(p, pow2i(_mm256_sub_epi32(e, _mm256_set1_epi32(1)))), _mm256_set1_ps(2.0f));
  const __m256 low =
      _mm256_mul_ps(_mm256_mul_ps(p, pow2i(_mm256_add_epi32(e, _mm256_set1_epi32(64)))),
                    _mm256_set1_ps(0x1p-64f));
  const __m256 is_high = _mm256_castsi256_ps(_mm256_cmpgt_epi32(e, _mm256_set1_epi32(127)));
  const __m256 is_low = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(-126), e));
  __m256 out = _mm256_blendv_ps(_mm256_blendv_ps(mid, high, is_high), low, is_low);
  // The early returns, last to first so that the first one that applies wins.
  out = _mm256_blendv_ps(out, _mm256_setzero_ps(),
                         _mm256_cmp_ps(x, _mm256_set1_ps(kExpUnderflow), _CMP_LT_OQ));
  out = _mm256_blendv_ps(out, _mm256_set1_ps(kInf),
                         _mm256_cmp_ps(x, _mm256_set1_ps(kExpOverflow), _CMP_GT_OQ));
  return _mm256_blendv_ps(out, _mm256_add_ps(x, x), _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

inline __m256 silu_lanes(__m256 x) {
  const __m256 negative = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  // x < 0: e = exp(x), x e / (1 + e); otherwise x / (1 + exp(-x)).
  const __m256 e =
      exp_lanes(_mm256_blendv_ps(_mm256_xor_ps(x, _mm256_set1_ps(-0.0f)), x, negative));
  const __m256 one_plus_e = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
  const __m256 neg = _mm256_div_ps(_mm256_mul_ps(x, e), one_plus_e);
  const __m256 pos = _mm256_div_ps(x, one_plus_e);
  return _mm256_blendv_ps(pos, neg, negative);
}

// round_to_bf16 per lane: round to nearest even, a NaN to the canonical NaN.
inline __m256 round_to_bf16_lanes(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_slli_epi32(
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), odd), 16),
      16);
  const __m256 nan = _mm256_castsi256_ps(_mm256_set1_epi32(int(num::kBf16CanonicalNan) << 16));
  return _mm256_blendv_ps(_mm256_castsi256_ps(rounded), nan, _mm256_cmp_ps(f, f, _CMP_UNORD_Q));
}

}  // namespace specstate::cpu

#endif
