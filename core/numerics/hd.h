// Host-device portability for the numerics headers. Everything under core/numerics/ compiles
// unchanged as C++ on the host and as CUDA device code, so the CPU and CUDA backends run one
// source of arithmetic. Every floating-point operation goes through the wrappers below, which
// are correctly rounded on both sides (IEEE round-to-nearest-even) and never contracted.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SPECSTATE_HD __host__ __device__
#else
#include <cmath>
#define SPECSTATE_HD
#endif

// Unrolls the next loop on every compiler that builds the numerics (the loops have constant,
// small trip counts; unrolling changes no result).
#if defined(__CUDACC__) || defined(__clang__)
#define SPECSTATE_UNROLL _Pragma("unroll")
#else
#define SPECSTATE_UNROLL _Pragma("GCC unroll 16")
#endif

namespace specstate::num {

SPECSTATE_HD inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

SPECSTATE_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// The only arithmetic the canonical step uses: + - * / sqrt and fused multiply-add, each
// rounded once. On the device the intrinsics pin the rounding even if --fmad were on.
SPECSTATE_HD inline float fadd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

SPECSTATE_HD inline float fsub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

SPECSTATE_HD inline float fmul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

SPECSTATE_HD inline float fdiv(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

SPECSTATE_HD inline float fsqrt(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// a * b + c with a single rounding.
SPECSTATE_HD inline float ffma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

}  // namespace specstate::num
