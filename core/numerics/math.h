// The project's own transcendental functions. Only + - * / sqrt and fma appear, in a fixed order,
// so the host (g++ -ffp-contract=off) and the device (nvcc --fmad=false) return identical bits
// for every input. No libm exp/log is used on either side: their last bits differ between
// vendors. Accuracy against float64 is measured by tests/test_math.cpp and docs/numerics.md.
#pragma once

#include "core/numerics/hd.h"

namespace specstate::num {

inline constexpr float kLog2e = 0x1.715476p+0f;
inline constexpr float kLn2Hi = 0x1.62e430p-1f;        // ln 2 rounded to float
inline constexpr float kLn2Lo = -0x1.05c610p-29f;      // ln 2 - kLn2Hi
inline constexpr float kRoundMagic = 0x1.8p23f;        // adding it rounds |t| < 2^22 to an integer
inline constexpr float kExpOverflow = 0x1.62e430p+6f;  // above: exp(x) > FLT_MAX
inline constexpr float kExpUnderflow = -0x1.9fe368p+6f;  // below: exp(x) < 2^-150, rounds to 0
inline constexpr float kInf = __builtin_huge_valf();

// 2^n as a float for -126 <= n <= 127, built from exponent bits.
SPECSTATE_HD inline float pow2i(int n) {
  return bits_float(static_cast<uint32_t>(n + 127) << 23);
}

// exp(x). Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then
// exp(r) = 1 + r + r^2 (c2 + r (c3 + r (c4 + r (c5 + r c6)))) in Horner form with fma, then
// scaling by 2^n through exponent bits (two steps near the ends of the range, so subnormal
// results are rounded once). Coefficients: a relative-error fit on the reduced interval.
SPECSTATE_HD inline float exp_f32(float x) {
  if (x != x) return fadd(x, x);  // NaN
  if (x > kExpOverflow) return kInf;
  if (x < kExpUnderflow) return 0.0f;
  const float n = fsub(ffma(x, kLog2e, kRoundMagic), kRoundMagic);  // round(x / ln2)
  float r = ffma(-n, kLn2Hi, x);
  r = ffma(-n, kLn2Lo, r);
  float p = 0x1.6a1b34p-10f;
  p = ffma(p, r, 0x1.1239ccp-7f);
  p = ffma(p, r, 0x1.5559p-5f);
  p = ffma(p, r, 0x1.555492p-3f);
  p = ffma(p, r, 0x1.fffffcp-2f);
  p = ffma(p, r, 1.0f);
  p = ffma(p, r, 1.0f);
  const int e = static_cast<int>(n);
  if (e > 127) return fmul(fmul(p, pow2i(e - 1)), 2.0f);
  if (e < -126) return fmul(fmul(p, pow2i(e + 64)), 0x1p-64f);
  return fmul(p, pow2i(e));
}

// Natural log of u for finite u > 0 (the caller handles 0, negatives, inf, NaN).
// u = m 2^e with m in [sqrt(2)/2, sqrt(2)); log m = 2 atanh(s), s = (m - 1) / (m + 1),
// 2 atanh(s) = 2s + 2s z (d0 + z (d1 + z (d2 + z d3))), z = s^2.
SPECSTATE_HD inline float log_positive(float u) {
  uint32_t bits = float_bits(u);
  int e = 0;
  if (bits < 0x00800000u) {  // subnormal: scale into the normal range first
    u = fmul(u, 0x1p+25f);
    bits = float_bits(u);
    e = -25;
  }
  e += static_cast<int>(bits >> 23) - 127;
  float m = bits_float((bits & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  if (m > 0x1.6a09e6p+0f) {
    m = fmul(m, 0.5f);
    e += 1;
  }
  const float f = fsub(m, 1.0f);  // exact
  const float s = fdiv(f, fadd(2.0f, f));
  const float z = fmul(s, s);
  float p = 0x1.e2ef66p-4f;
  p = ffma(p, z, 0x1.24390ep-3f);
  p = ffma(p, z, 0x1.999a7ap-3f);
  p = ffma(p, z, 0x1.555554p-2f);
  const float two_s = fmul(2.0f, s);
  const float log_m = ffma(fmul(two_s, z), p, two_s);
  const float fe = static_cast<float>(e);
  return fadd(ffma(fe, kLn2Hi, fmul(fe, kLn2Lo)), log_m);
}

// log(1 + y). For |y| small 1 + y rounds; the correction (y - (u - 1)) / u restores what the
// rounding lost (first-order term of log(u + c) = log u + c / u).
SPECSTATE_HD inline float log1p_f32(float y) {
  if (y != y) return fadd(y, y);
  if (y == kInf) return y;
  if (y == -1.0f) return -kInf;
  if (y < -1.0f) return bits_float(0x7FC00000u);
  const float u = fadd(1.0f, y);
  if (u == 1.0f) return y;
  const float c = fdiv(fsub(y, fsub(u, 1.0f)), u);
  return fadd(log_positive(u), c);
}

// 1 / (1 + exp(-x)) for x >= 0; exp(x) / (1 + exp(x)) for x < 0, so that exp never overflows
// where the result is tiny (down to subnormal results near x = -100). Both cases are one exp
// (of -|x|, NaN passing through) and one division, the operands picked by selects, not branches:
// a GPU warp whose inputs have both signs would otherwise run both.
SPECSTATE_HD inline float sigmoid_f32(float x) {
  const bool negative = x < 0.0f;
  const float e = exp_f32(negative ? x : -x);
  return fdiv(negative ? e : 1.0f, fadd(1.0f, e));
}

// x * sigmoid(x): x / (1 + exp(-x)) for x >= 0 (one division); x exp(x) / (1 + exp(x)) for
// x < 0, for the same reason as sigmoid, and with selects as sigmoid has.
SPECSTATE_HD inline float silu_f32(float x) {
  const bool negative = x < 0.0f;
  const float e = exp_f32(negative ? x : -x);
  return fdiv(negative ? fmul(x, e) : x, fadd(1.0f, e));
}

// log(1 + exp(x)), or x itself above the threshold 20 (torch.nn.functional.softplus).
SPECSTATE_HD inline float softplus_f32(float x) {
  if (x > 20.0f) return x;
  return log1p_f32(exp_f32(x));
}

}  // namespace specstate::num
