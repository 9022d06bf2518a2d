// A group of N independent columns that run one canonical sequence side by side: lane l of every
// operation is exactly the scalar operation on lane l's operands. The canonical step
// (gdn_step.h) is written over a lane type L, so the same source runs one column per call
// (L = float), a SIMD group of columns on the host (L = Lanes<8>: g++ and clang turn the
// loops into AVX2 vfmadd/vmulps, which round exactly like std::fma and *), or the columns a
// device thread owns (L = Lanes<2>).
#pragma once

#include "core/numerics/hd.h"

#if !defined(__CUDACC__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace specstate::num {

template <int N>
struct Lanes {
  float v[N];
};

template <int N>
SPECSTATE_HD inline Lanes<N> fmul(float a, Lanes<N> b) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = fmul(a, b.v[l]);
  return r;
}

template <int N>
SPECSTATE_HD inline Lanes<N> fadd(Lanes<N> a, Lanes<N> b) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = fadd(a.v[l], b.v[l]);
  return r;
}

template <int N>
SPECSTATE_HD inline Lanes<N> fsub(Lanes<N> a, Lanes<N> b) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = fsub(a.v[l], b.v[l]);
  return r;
}

// a_l * b + c_l, one rounding per lane.
template <int N>
SPECSTATE_HD inline Lanes<N> ffma(Lanes<N> a, float b, Lanes<N> c) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = ffma(a.v[l], b, c.v[l]);
  return r;
}

// a * b_l + c_l, one rounding per lane.
template <int N>
SPECSTATE_HD inline Lanes<N> ffma(float a, Lanes<N> b, Lanes<N> c) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = ffma(a, b.v[l], c.v[l]);
  return r;
}

// Host builds with AVX2 + FMA: the 8-lane operations as single instructions. Each is the IEEE
// operation per lane with one rounding (vfmadd*ps rounds once, like std::fma), so the bits are
// those of the loops above; only the compiler's freedom to leave them scalar is taken away.
#if !defined(__CUDACC__) && defined(__AVX2__) && defined(__FMA__)
namespace avx {
inline __m256 load(const Lanes<8>& x) {
  return _mm256_loadu_ps(x.v);
}
inline Lanes<8> store(__m256 x) {
  Lanes<8> r;
  _mm256_storeu_ps(r.v, x);
  return r;
}
}  // namespace avx

inline Lanes<8> fmul(float a, Lanes<8> b) {
  return avx::store(_mm256_mul_ps(_mm256_set1_ps(a), avx::load(b)));
}
inline Lanes<8> fadd(Lanes<8> a, Lanes<8> b) {
  return avx::store(_mm256_add_ps(avx::load(a), avx::load(b)));
}
inline Lanes<8> fsub(Lanes<8> a, Lanes<8> b) {
  return avx::store(_mm256_sub_ps(avx::load(a), avx::load(b)));
}
inline Lanes<8> ffma(Lanes<8> a, float b, Lanes<8> c) {
  return avx::store(_mm256_fmadd_ps(avx::load(a), _mm256_set1_ps(b), avx::load(c)));
}
inline Lanes<8> ffma(float a, Lanes<8> b, Lanes<8> c) {
  return avx::store(_mm256_fmadd_ps(_mm256_set1_ps(a), avx::load(b), avx::load(c)));
}
#endif

}  // namespace specstate::num
